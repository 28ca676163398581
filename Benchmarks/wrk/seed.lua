-- Creates BENCH_SESSIONS sessions (300 bytes of data each) and writes their tokens to
-- BENCH_WORK/tokens-<thread>.txt for the mixed benchmark. Not a measurement: each of the
-- BENCH_THREADS threads stops once it has written its share and leaves BENCH_WORK/done-<thread>
-- (wrk itself runs until its -d deadline, so the caller stops it when every thread is done).
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local created = 0

function setup(thread)
    created = created + 1
    thread:set("index", created)
end

wrk.method = "POST"
wrk.path = "/v1/sessions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"data":' .. common.data .. '}'

local wanted = math.ceil(tonumber(os.getenv("BENCH_SESSIONS")) / tonumber(os.getenv("BENCH_THREADS")))
local written = 0
local file = nil

function response(status, headers, body)
    if written >= wanted or status ~= 201 then return end
    if file == nil then
        file = io.open(os.getenv("BENCH_WORK") .. "/tokens-" .. index .. ".txt", "w")
    end
    file:write(body:match('"token":"([^"]+)"'), "\n")
    written = written + 1
    if written == wanted then
        file:close()
        io.open(os.getenv("BENCH_WORK") .. "/done-" .. index, "w"):close()
        wrk.thread:stop()
    end
end
