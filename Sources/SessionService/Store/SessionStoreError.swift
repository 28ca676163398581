import RedisClient

/// Why a session operation did not happen.
enum SessionStoreError: Error, Sendable {
    /// No such live session behind the token or id (never existed, expired, deleted, revoked, a
    /// token rotated away, or a token that is no token of it).
    case notFound
    /// The previous token after its grace window (``SessionStore`` turns it into ``notFound`` once
    /// it has dealt with the reuse).
    case tokenReused
    /// A rotation with the previous token, inside its grace window: only the current token rotates.
    case tokenSuperseded
    /// The session was last authenticated longer ago than the request allows; nothing was touched.
    case reauthenticationRequired(authenticatedAt: Int64)
    /// The data would make the session larger than ``SessionLimits`` allow; nothing was written.
    case sessionTooLarge(String)
    /// An attribute name ``SessionLimits`` refuse; nothing was written.
    case invalidAttributeName(String)
    /// `If-Match` named other versions than the current one.
    case versionMismatch(current: Int64)
    /// Replicated mode: the write happened on the primary but too few replicas acknowledged it in
    /// time, so it is not reported as a success (it may or may not survive a failover).
    case notDurable(RedisClientError)
    /// Redis could not be reached or did not answer in time; the operation may be retried.
    case unavailable(RedisClientError)
    /// Events after the cursor given have been trimmed (older than the retention): the consumer
    /// must resynchronise and read again without a cursor.
    case cursorExpired
    /// Redis refused a command or answered something sessiond did not write: a bug, or foreign data
    /// under its keys. Not worth retrying.
    case corrupt(String)
}
