-- GET /v1/session of one session holding 300 bytes of data (token from BENCH_TOKEN).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/v1/session"
wrk.headers["X-Session-Token"] = os.getenv("BENCH_TOKEN")
