-- A peer's session read: GET /session with the session cookie its login set (BENCH_COOKIE).
wrk.method = "GET"
wrk.path = "/session"
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
