-- 90% GET / 10% PATCH of one attribute, spread over the sessions seed.lua created.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local tokens = common.load_tokens(os.getenv("BENCH_WORK"))
local count = 0

function init(args)
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
end

function request()
    count = count + 1
    local headers = { ["X-Session-Token"] = tokens[math.random(#tokens)] }
    if count % 10 == 0 then
        headers["Content-Type"] = "application/json"
        return wrk.format("PATCH", "/v1/session", headers, common.patch)
    end
    return wrk.format("GET", "/v1/session", headers)
end
