-- PATCH /v1/session setting one 100-byte attribute of one session (token from BENCH_TOKEN).
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "PATCH"
wrk.path = "/v1/session"
wrk.headers["X-Session-Token"] = os.getenv("BENCH_TOKEN")
wrk.headers["Content-Type"] = "application/json"
wrk.body = common.patch
