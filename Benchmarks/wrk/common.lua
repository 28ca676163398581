-- Shared by the wrk scripts of scripts/bench-http.sh (loaded with dofile from BENCH_DIR).
-- Session data is 3 attributes of 100 bytes each: 300 bytes, as in the issue's figures.
local M = {}

-- A cluster with API keys (scripts/compare.sh) passes its key in BENCH_API_KEY.
if os.getenv("BENCH_API_KEY") then
    wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
end

M.value = string.rep("v", 100)
M.data = string.format('{"profile":"%s","cart":"%s","prefs":"%s"}', M.value, M.value, M.value)
M.patch = string.format('{"cart":"%s"}', M.value)

-- The tokens seed.lua wrote, one per line, in DIR/tokens-*.txt.
function M.load_tokens(dir)
    local tokens = {}
    local listing = io.popen('ls "' .. dir .. '"/tokens-*.txt')
    for path in listing:lines() do
        for line in io.lines(path) do tokens[#tokens + 1] = line end
    end
    listing:close()
    assert(#tokens > 0, "no tokens in " .. dir)
    return tokens
end

return M
