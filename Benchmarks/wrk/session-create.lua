-- POST /v1/sessions with 300 bytes of data and a user (so the per-user index is written too).
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.path = "/v1/sessions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user":"bench","data":' .. common.data .. '}'
