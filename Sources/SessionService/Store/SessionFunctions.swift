import RedisClient

/// The Redis Functions library behind every session operation, so each request is one round trip
/// and each step is atomic on the server.
///
/// Every function touches the keys of one hash slot only (a session's key, or a user's index), so
/// the layout works unchanged on Redis Cluster. Times come from Redis' own clock (`TIME`), never the
/// caller's. No function ever creates a session key except `session_create` and `session_import`,
/// so no write or touch can bring back an expired, deleted or rotated-away session.
///
/// A session is one hash: meta fields `v` (version), `c` (created ms), `l` (last idle slide ms),
/// `i` (idle timeout ms), `a` (absolute deadline ms), `u` (user, optional); each data attribute is
/// the field `.<name>` holding the attribute's raw JSON. The key's expiry is always
/// min(`l` + `i`, `a`).
enum SessionFunctions {
    static let library = RedisFunctionLibrary(source: #"""
        #!lua name=sessiond

        local function now_ms()
            local t = redis.call('TIME')
            return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end

        local function expiry(last, idle, absolute)
            return math.min(last + idle, absolute)
        end

        -- HSET / HDEL in slices: Lua's unpack cannot spread thousands of arguments at once.
        local function in_slices(command, key, items, width)
            for first = 1, #items, width do
                local slice = {}
                for index = first, math.min(first + width - 1, #items) do slice[#slice + 1] = items[index] end
                redis.call(command, key, unpack(slice))
            end
        end

        local function field_value(fields, name)
            for index = 1, #fields, 2 do
                if fields[index] == name then return fields[index + 1], index + 1 end
            end
            return nil, nil
        end

        -- The whole hash, or nil when the session is gone. A key Redis has not evicted yet but
        -- whose deadline has passed counts as gone.
        local function load(key, now)
            local fields = redis.call('HGETALL', key)
            if #fields == 0 then return nil end
            local last = tonumber((field_value(fields, 'l')))
            local idle = tonumber((field_value(fields, 'i')))
            local absolute = tonumber((field_value(fields, 'a')))
            if now >= expiry(last, idle, absolute) then
                redis.call('DEL', key)
                return nil
            end
            return fields
        end

        local function version_matches(condition, version)
            if condition == '*' then return true end
            for candidate in string.gmatch(condition, '[^,]+') do
                if tonumber(candidate) == version then return true end
            end
            return false
        end

        -- KEYS: session. ARGV: user ('' for none), idle ms, absolute ms, then name, raw JSON pairs.
        redis.register_function('session_create', function(keys, args)
            local now = now_ms()
            local idle = tonumber(args[2])
            local absolute = now + tonumber(args[3])
            if redis.call('EXISTS', keys[1]) == 1 then
                return redis.error_reply('SESSIOND_EXISTS session id collision')
            end
            local fields = {'v', '1', 'c', tostring(now), 'l', tostring(now), 'i', tostring(idle), 'a', tostring(absolute)}
            if args[1] ~= '' then
                fields[#fields + 1] = 'u'
                fields[#fields + 1] = args[1]
            end
            for index = 4, #args, 2 do
                fields[#fields + 1] = '.' .. args[index]
                fields[#fields + 1] = args[index + 1]
            end
            in_slices('HSET', keys[1], fields, 200)
            redis.call('PEXPIREAT', keys[1], expiry(now, idle, absolute))
            return fields
        end)

        -- KEYS: session. ARGV: '1' to slide the idle deadline, minimum ms since the last slide.
        redis.register_function('session_get', function(keys, args)
            local now = now_ms()
            local fields = load(keys[1], now)
            if not fields then return nil end
            if args[1] == '1' then
                local last, position = field_value(fields, 'l')
                if now - tonumber(last) >= tonumber(args[2]) then
                    local idle = tonumber((field_value(fields, 'i')))
                    local absolute = tonumber((field_value(fields, 'a')))
                    redis.call('HSET', keys[1], 'l', tostring(now))
                    redis.call('PEXPIREAT', keys[1], expiry(now, idle, absolute))
                    fields[position] = tostring(now)
                end
            end
            return fields
        end)

        -- KEYS: session. ARGV: If-Match condition ('' for none, '*', or versions joined by ','),
        -- 'patch' or 'replace', then name, raw JSON pairs. In 'patch' a raw 'null' deletes the
        -- attribute; 'replace' first removes every attribute. Slides the idle deadline.
        redis.register_function('session_write', function(keys, args)
            local now = now_ms()
            local key = keys[1]
            local meta = redis.call('HMGET', key, 'v', 'l', 'i', 'a')
            if not meta[1] then return nil end
            local version = tonumber(meta[1])
            local idle = tonumber(meta[3])
            local absolute = tonumber(meta[4])
            if now >= expiry(tonumber(meta[2]), idle, absolute) then
                redis.call('DEL', key)
                return nil
            end
            if args[1] ~= '' and not version_matches(args[1], version) then
                return redis.error_reply('SESSIOND_VERSION_MISMATCH ' .. version)
            end
            local removals = {}
            if args[2] == 'replace' then
                for _, name in ipairs(redis.call('HKEYS', key)) do
                    if string.sub(name, 1, 1) == '.' then removals[#removals + 1] = name end
                end
            end
            local updates = {'l', tostring(now)}
            for index = 3, #args, 2 do
                if args[2] == 'patch' and args[index + 1] == 'null' then
                    removals[#removals + 1] = '.' .. args[index]
                else
                    updates[#updates + 1] = '.' .. args[index]
                    updates[#updates + 1] = args[index + 1]
                end
            end
            in_slices('HDEL', key, removals, 400)
            in_slices('HSET', key, updates, 200)
            redis.call('HINCRBY', key, 'v', 1)
            redis.call('PEXPIREAT', key, expiry(now, idle, absolute))
            return redis.call('HGETALL', key)
        end)

        -- KEYS: session. Deletes it; returns {1, user or ''} when it existed, {0, ''} otherwise.
        redis.register_function('session_delete', function(keys, args)
            local user = redis.call('HGET', keys[1], 'u')
            local deleted = redis.call('DEL', keys[1])
            return {deleted, user or ''}
        end)

        -- KEYS: session. Removes the session and returns its fields (nil when gone): the first half
        -- of a rotation, after which the old token is dead.
        redis.register_function('session_take', function(keys, args)
            local fields = load(keys[1], now_ms())
            if not fields then return nil end
            redis.call('DEL', keys[1])
            return fields
        end)

        -- KEYS: the new session key. ARGV: the fields from session_take. The second half of a
        -- rotation: recreates the session under its new id, sliding the idle deadline.
        redis.register_function('session_import', function(keys, args)
            local now = now_ms()
            if redis.call('EXISTS', keys[1]) == 1 then
                return redis.error_reply('SESSIOND_EXISTS session id collision')
            end
            local idle = tonumber((field_value(args, 'i')))
            local absolute = tonumber((field_value(args, 'a')))
            if now >= absolute then return nil end
            local _, position = field_value(args, 'l')
            args[position] = tostring(now)
            in_slices('HSET', keys[1], args, 200)
            redis.call('PEXPIREAT', keys[1], expiry(now, idle, absolute))
            return args
        end)

        -- KEYS: a user's index (sorted set of session ids scored by absolute deadline + 1 s).
        -- ARGV: id, absolute deadline ms ('' to use now + ARGV[3]), lifetime ms.
        -- Adds the id, drops entries past their absolute deadline (those sessions are certainly
        -- gone), keeps the index alive exactly as long as its longest-lived entry. Returns its size.
        redis.register_function('user_index_add', function(keys, args)
            local now = now_ms()
            local deadline = args[2] ~= '' and tonumber(args[2]) or now + tonumber(args[3])
            redis.call('ZADD', keys[1], deadline + 1000, args[1])
            redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', now)
            local last = redis.call('ZRANGE', keys[1], -1, -1, 'WITHSCORES')
            if #last > 0 then redis.call('PEXPIREAT', keys[1], last[2]) end
            return redis.call('ZCARD', keys[1])
        end)
        """#)
}
