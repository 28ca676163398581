-- A peer's session update: PATCH /session setting one 100-byte attribute (BENCH_COOKIE as above).
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "PATCH"
wrk.path = "/session"
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
wrk.headers["Content-Type"] = "application/json"
wrk.body = common.patch
