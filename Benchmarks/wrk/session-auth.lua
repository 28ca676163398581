-- GET /v1/auth of one session holding 300 bytes of data (token from BENCH_TOKEN): what a gateway asks.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/v1/auth"
wrk.headers["X-Session-Token"] = os.getenv("BENCH_TOKEN")
