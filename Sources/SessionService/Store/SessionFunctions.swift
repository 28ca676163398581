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
/// `i` (idle timeout ms), `a` (absolute deadline ms), `u` (user, optional), `w` (the write ids of
/// its latest writes); each data attribute is the field `.<name>` holding the attribute's raw JSON.
/// The key's expiry is always min(`l` + `i`, `a`) − 1 ms, so Redis itself never returns a session
/// at or past its deadline and a read needs no script: it is one plain `HGETALL`
/// (see ``SessionStore/read(_:touch:)``).
///
/// Every write is safe to repeat. Each carries a write id (8 random bytes, one per HTTP request);
/// the session remembers the ids of its last 8 writes in `w`, and a write whose id is there was
/// already applied: it answers with the session as it is instead of applying it again. A write that
/// removes the session key (delete, and the take half of a rotation) leaves a tombstone under the
/// same hash tag, kept for a retention the caller passes, that holds its write id (and for a take,
/// the session it took), so its repeat also answers as the first application did. The user-index
/// functions need no id: adding an id that is there, or removing one that is not, changes nothing.
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

        -- Redis returns a key while its clock is at or before the key's expiry time, so the key
        -- expires 1 ms before the session's deadline: at the deadline itself a plain read already
        -- finds nothing.
        local function expire_at(key, deadline)
            redis.call('PEXPIREAT', key, deadline - 1)
        end

        -- HSET / HDEL in slices: Lua's unpack cannot spread thousands of arguments at once.
        local function in_slices(command, key, items, width)
            if #items == 0 then return end
            if #items <= width then
                redis.call(command, key, unpack(items))
                return
            end
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

        -- Write ids are 8 bytes; a session keeps the newest REMEMBERED_WRITES of them, concatenated.
        local WRITE_ID_BYTES = 8
        local REMEMBERED_WRITES = 8

        local function check_write_id(id)
            if #id ~= WRITE_ID_BYTES then
                return redis.error_reply('ERR sessiond: a write id is ' .. WRITE_ID_BYTES .. ' bytes')
            end
            return nil
        end

        -- A plain substring search (no pattern, no substrings made), aligned to whole ids.
        local function has_write(ids, id)
            if not ids then return false end
            local from = 1
            while true do
                local at = string.find(ids, id, from, true)
                if not at then return false end
                if (at - 1) % WRITE_ID_BYTES == 0 then return true end
                from = at + 1
            end
        end

        local function remember_write(ids, id)
            ids = ids or ''
            if has_write(ids, id) then return ids end
            ids = ids .. id
            local kept = WRITE_ID_BYTES * REMEMBERED_WRITES
            if #ids > kept then ids = string.sub(ids, #ids - kept + 1) end
            return ids
        end

        local function version_matches(condition, version)
            if condition == '*' then return true end
            for candidate in string.gmatch(condition, '[^,]+') do
                if tonumber(candidate) == version then return true end
            end
            return false
        end

        -- KEYS: session. ARGV: write id, user ('' for none), idle ms, absolute ms, then name, raw
        -- JSON pairs.
        redis.register_function('session_create', function(keys, args)
            local invalid = check_write_id(args[1])
            if invalid then return invalid end
            if redis.call('EXISTS', keys[1]) == 1 then
                if has_write(redis.call('HGET', keys[1], 'w'), args[1]) then return redis.call('HGETALL', keys[1]) end
                return redis.error_reply('SESSIOND_EXISTS session id collision')
            end
            local now = now_ms()
            local idle = tonumber(args[3])
            local absolute = now + tonumber(args[4])
            local fields = {'v', '1', 'c', tostring(now), 'l', tostring(now), 'i', tostring(idle), 'a', tostring(absolute), 'w', args[1]}
            if args[2] ~= '' then
                fields[#fields + 1] = 'u'
                fields[#fields + 1] = args[2]
            end
            for index = 5, #args, 2 do
                fields[#fields + 1] = '.' .. args[index]
                fields[#fields + 1] = args[index + 1]
            end
            in_slices('HSET', keys[1], fields, 200)
            expire_at(keys[1], expiry(now, idle, absolute))
            return fields
        end)

        -- KEYS: session. ARGV: minimum ms since the last slide. Slides the idle deadline when that
        -- much has passed by Redis' clock (sessiond asks only when its estimate of that clock says
        -- so; this is the check that counts). Returns the session, nil when it is gone.
        redis.register_function('session_touch', function(keys, args)
            local now = now_ms()
            local fields = load(keys[1], now)
            if not fields then return nil end
            local last, position = field_value(fields, 'l')
            if now - tonumber(last) >= tonumber(args[1]) then
                local idle = tonumber((field_value(fields, 'i')))
                local absolute = tonumber((field_value(fields, 'a')))
                redis.call('HSET', keys[1], 'l', tostring(now))
                expire_at(keys[1], expiry(now, idle, absolute))
                fields[position] = tostring(now)
            end
            return fields
        end)

        -- KEYS: session. ARGV: write id, If-Match condition ('' for none, '*', or versions joined
        -- by ','), 'patch' or 'replace', then name, raw JSON pairs. In 'patch' a raw 'null' deletes
        -- the attribute; 'replace' first removes every attribute. Slides the idle deadline.
        -- Reads only the meta fields it needs: a key that exists is a live session, since the key
        -- expires with it (a script sees time stand still at its start, so it cannot pass mid-way).
        redis.register_function('session_write', function(keys, args)
            local invalid = check_write_id(args[1])
            if invalid then return invalid end
            local key = keys[1]
            local meta = redis.call('HMGET', key, 'v', 'i', 'a', 'w')
            if not meta[1] then return nil end
            if has_write(meta[4], args[1]) then return redis.call('HGETALL', key) end
            local version = tonumber(meta[1])
            if args[2] ~= '' and not version_matches(args[2], version) then
                return redis.error_reply('SESSIOND_VERSION_MISMATCH ' .. version)
            end
            local now = now_ms()
            local removals = {}
            if args[3] == 'replace' then
                for _, name in ipairs(redis.call('HKEYS', key)) do
                    if string.sub(name, 1, 1) == '.' then removals[#removals + 1] = name end
                end
            end
            local updates = {'v', tostring(version + 1), 'l', tostring(now), 'w', remember_write(meta[4], args[1])}
            for index = 4, #args, 2 do
                if args[3] == 'patch' and args[index + 1] == 'null' then
                    removals[#removals + 1] = '.' .. args[index]
                else
                    updates[#updates + 1] = '.' .. args[index]
                    updates[#updates + 1] = args[index + 1]
                end
            end
            in_slices('HDEL', key, removals, 400)
            in_slices('HSET', key, updates, 200)
            expire_at(key, expiry(now, tonumber(meta[2]), tonumber(meta[3])))
            return redis.call('HGETALL', key)
        end)

        -- KEYS: session, its tombstone. ARGV: write id, tombstone retention ms. Deletes the session;
        -- returns {1, user or ''} when it existed (or this very delete already removed it), {0, ''}
        -- otherwise.
        redis.register_function('session_delete', function(keys, args)
            local invalid = check_write_id(args[1])
            if invalid then return invalid end
            local user = redis.call('HGET', keys[1], 'u') or ''
            if redis.call('DEL', keys[1]) == 1 then
                redis.call('HSET', keys[2], 'w', args[1], 'u', user)
                redis.call('PEXPIRE', keys[2], args[2])
                return {1, user}
            end
            local tombstone = redis.call('HMGET', keys[2], 'w', 'u')
            if has_write(tombstone[1], args[1]) then return {1, tombstone[2] or ''} end
            return {0, ''}
        end)

        -- KEYS: session, its tombstone. ARGV: write id, tombstone retention ms. The first half of a
        -- rotation: moves the session to its tombstone (after which the old token is dead) and
        -- returns its fields, nil when it is gone.
        redis.register_function('session_take', function(keys, args)
            local invalid = check_write_id(args[1])
            if invalid then return invalid end
            local fields = load(keys[1], now_ms())
            if not fields then
                if has_write(redis.call('HGET', keys[2], 'w'), args[1]) and redis.call('HEXISTS', keys[2], 'v') == 1 then
                    return redis.call('HGETALL', keys[2])
                end
                return nil
            end
            redis.call('RENAME', keys[1], keys[2])
            redis.call('HSET', keys[2], 'w', remember_write((field_value(fields, 'w')), args[1]))
            redis.call('PEXPIRE', keys[2], args[2])
            return redis.call('HGETALL', keys[2])
        end)

        -- KEYS: the new session key. ARGV: write id, then the fields from session_take. The second
        -- half of a rotation: recreates the session under its new id, sliding the idle deadline.
        redis.register_function('session_import', function(keys, args)
            local invalid = check_write_id(args[1])
            if invalid then return invalid end
            if redis.call('EXISTS', keys[1]) == 1 then
                if has_write(redis.call('HGET', keys[1], 'w'), args[1]) then return redis.call('HGETALL', keys[1]) end
                return redis.error_reply('SESSIOND_EXISTS session id collision')
            end
            local fields = {}
            for index = 2, #args do fields[#fields + 1] = args[index] end
            local now = now_ms()
            local idle = tonumber((field_value(fields, 'i')))
            local absolute = tonumber((field_value(fields, 'a')))
            if now >= absolute then return nil end
            local _, last = field_value(fields, 'l')
            fields[last] = tostring(now)
            local ids, position = field_value(fields, 'w')
            if position then
                fields[position] = remember_write(ids, args[1])
            else
                fields[#fields + 1] = 'w'
                fields[#fields + 1] = args[1]
            end
            in_slices('HSET', keys[1], fields, 200)
            expire_at(keys[1], expiry(now, idle, absolute))
            return fields
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

/// The functions of ``SessionFunctions/library`` and the policy each call follows, in one place.
///
/// Every one of them may be sent again after a broken connection, a timeout or a failover: the
/// touch and the index upkeep change nothing that matters when repeated, and the session writes
/// recognise their write id (see ``SessionFunctions``). Every one of them writes, so in the
/// replicated mode its acknowledgement waits for the replicas; reads are plain commands.
enum SessionFunction: String, Sendable {
    case create = "session_create"
    case touch = "session_touch"
    case write = "session_write"
    case delete = "session_delete"
    case take = "session_take"
    case `import` = "session_import"
    case userIndexAdd = "user_index_add"
}
