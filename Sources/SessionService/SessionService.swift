/// The session service: HTTP routes, the session store and its configuration (built on issue 3).
public enum SessionService {}
