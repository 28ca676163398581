-- POST /v1/sessions with 300 bytes of data and a user (so the per-user index is written too);
-- BENCH_USER names the user, an empty BENCH_USER creates sessions without one.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local user = os.getenv("BENCH_USER") or "bench"
wrk.method = "POST"
wrk.path = "/v1/sessions"
wrk.headers["Content-Type"] = "application/json"
if user == "" then
    wrk.body = '{"data":' .. common.data .. '}'
else
    wrk.body = '{"user":"' .. user .. '","data":' .. common.data .. '}'
end
