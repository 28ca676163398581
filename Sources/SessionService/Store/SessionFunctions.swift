import RedisClient

/// The Redis Functions library behind every session write, so each one is one round trip and
/// atomic on the server.
///
/// Every function touches the keys of one hash slot only (a session's key, its tombstone and, in
/// layouts 2 and 3, its bucket's deadline index and, with events, its bucket's outbox; or a user's
/// index; or the event log), so every storage layout (``SessionLayout``) works unchanged on Redis
/// Cluster. The session functions work in any layout: the caller passes the keys, and from layout
/// 2 the deadline index after the call's own keys and the session's member in it as the
/// second-to-last argument, and every function that sets or ends a deadline keeps the index exact in the same
/// call. In layout 3 with events, the function that makes a lifecycle change (create, rotate, a
/// delete, a revoking reuse, the sweeper's expiry) appends its event in the same call (see
/// ``SessionEvents``), and a session's key outlives its deadline by a backstop until the sweeper
/// ends it, so every function and every read checks the deadline. Times come from Redis' own clock (`TIME`), never the caller's. No
/// function but `create` (and `import`, which moves a session between layouts) ever creates a
/// session key, so no write, touch or rotation can bring back an expired or deleted session.
///
/// A session is one hash: `m`, its times packed (see ``SessionMeta``: version, created,
/// authenticated, last idle slide, idle timeout, absolute deadline), `k` (the digest of the current
/// token's secret, followed after a rotation by the previous one's and the end of its grace
/// window), `w` (the write ids of its latest writes), `u` (user, optional), `d` (device JSON,
/// optional), `z` (the data's size as of a version: see ``SessionLimits``), and one field
/// `.<name>` per data attribute holding its raw JSON. Three meta fields
/// rather than ten keep a read's `HGETALL` short, and none is over 64 bytes, so the hash stays a
/// compact listpack under Redis' default `hash-max-listpack-value`. Without events the key's expiry
/// is always min(last slide + idle, absolute) − 1 ms, so Redis itself never returns a session at or
/// past its deadline; with events it is that deadline plus a backstop and sessiond checks the
/// deadline itself. Either way a read needs no script: it is one plain `HGETALL`
/// (see ``SessionStore/read(_:touch:maxAuthAge:)``). A function that makes or changes a session
/// returns only whether it found one; sessiond reads the result with `HGETALL` right after the
/// `FCALL` in one `MULTI` block (``RedisClient/fcall(_:keys:arguments:then:idempotent:durable:)``),
/// because handing the hash back through Lua cost a third of a write's Redis time (BENCHMARKS.md).
/// The idle deadline slides (`PEXPIREAT`) at most once per touch interval, on a write as on a read.
///
/// Functions that act for a token's holder take its secret's digest (``SessionToken/secretDigest``) and compare it, in
/// constant time, with `s` and `p`. The current token may do everything; the previous one may read
/// and write until its grace window ends but never rotate; the previous one after its window is a
/// reuse (`SESSIOND_TOKEN_REUSE`): somebody kept a token that should be dead. Anything else is no
/// session. A rotation replaces `s` in the session's own key: one atomic step, so no failure can
/// leave a session reachable by neither token.
///
/// Every write is safe to repeat. Each carries a write id (8 random bytes, one per HTTP request);
/// the session remembers the ids of its last 8 writes in `w`, and a write whose id is there was
/// already applied: it answers with the session as it is instead of applying it again. A delete
/// leaves a tombstone under the same hash tag, kept for a retention the caller passes, that holds
/// its write id, so its repeat also answers as the first did. The user-index function needs no id:
/// adding an id that is there changes nothing.
enum SessionFunctions {
    /// The version of the functions' calling convention (arguments and replies). It names the
    /// library and every function in it (`sessiond_v4_write`), so instances that speak different
    /// versions can share one Redis without replacing each other's functions: Redis keeps function
    /// names unique across libraries, and each instance loads and calls only its own. Version 4
    /// added the storage layouts and the fleet's functions; its instances announce themselves
    /// (``FleetRegistry/firstAnnouncingProtocol``). Version 5 added the event outbox, the sweeper,
    /// the leases and the event log's functions; a session function's deadline member and the
    /// event log's retention are its last two arguments.
    static let protocolVersion = 5
    /// `sessiond_v<version>_`: the prefix of every function name of this version.
    static let functionPrefix = "sessiond_v\(protocolVersion)_"

    static let library = RedisFunctionLibrary(source: #"""
        #!lua name=sessiond_v\#(protocolVersion)

        local function now_ms()
            local t = redis.call('TIME')
            return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end

        local function expiry(meta)
            return math.min(meta.l + meta.i, meta.a)
        end

        -- Where a session function acts besides the call's own keys, taken off the ends of ARGV
        -- and KEYS first (popping is cheaper than shifting), so that the rest reads the same in
        -- every layout:
        -- the second-to-last argument, the session's member in its bucket's deadline index (a
        -- sorted set of raw session ids scored by their deadline in whole seconds, rounded up): ''
        -- in layout 1, which has no index; otherwise the index's key follows the call's own keys.
        -- The last argument, the event log's retention in ms: '' when the call records no event
        -- (layouts 1 and 2, or events off); otherwise the outbox the call appends its event to (its
        -- bucket's, or on a single server the event log itself) is the last key.
        local function place_of(keys, args)
            local retention = table.remove(args)
            local member = table.remove(args)
            local place = {}
            if retention ~= '' then
                place.outbox = table.remove(keys)
                place.retention = tonumber(retention)
            end
            if member ~= '' then
                place.member = member
                place.deadlines = table.remove(keys)
            end
            return place
        end

        -- When the key goes. Without events, 1 ms before the session's deadline (Redis returns a
        -- key while its clock is at or before the key's expiry time, so at the deadline a plain
        -- read already finds nothing). With events, BACKSTOP_MS after it: the sweeper ends the
        -- session (and records session.expired, with its user and which deadline ended it) from
        -- the deadline index first, and the TTL only collects what no sweeper reached (sessiond
        -- checks the deadline on every read and in every function meanwhile).
        local BACKSTOP_MS = \#(EventSettings.backstop.milliseconds)
        local function expire_at(key, meta, place)
            if place.outbox then
                redis.call('PEXPIREAT', key, expiry(meta) + BACKSTOP_MS)
            else
                redis.call('PEXPIREAT', key, expiry(meta) - 1)
            end
        end

        local function deadline_score(meta)
            return math.floor((expiry(meta) + 999) / 1000)
        end

        -- The key's expiry (KEYS[1]) and its index entry, always together.
        local function set_deadline(keys, place, meta)
            expire_at(keys[1], meta, place)
            if place.member then redis.call('ZADD', place.deadlines, deadline_score(meta), place.member) end
        end

        local function unindex(place)
            if place.member then redis.call('ZREM', place.deadlines, place.member) end
        end

        -- Whether a session whose key exists has passed its deadline (with events the key outlives
        -- it until the sweeper comes: see expire_at). In layout 1 the key never outlives it.
        local function past_deadline(meta, place, now)
            return place.member ~= nil and expiry(meta) <= now
        end

        -- A lifecycle event, appended to the outbox in the call that makes the change (nothing
        -- when the call records none). Every entry has the same five fields, so that a stream node
        -- stores their names once: 't' the type ('c' created, 'r' rotated, 'v' revoked, 'e'
        -- expired), 's' the raw session id, 'u' the user ('' none), 'r' the reason ('' none), 'a'
        -- when it happened (ms). Events older than the retention are trimmed as it goes.
        local function record(place, now, kind, user, reason, at)
            if not place.outbox then return end
            redis.call('XADD', place.outbox, 'MINID', '~', now - place.retention, '*',
                't', kind, 's', place.member, 'u', user or '', 'r', reason or '', 'a', at or now)
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

        -- The meta of a session is three short fields, so that the hash stays a listpack under
        -- Redis' default hash-max-listpack-value (64) and a read's HGETALL stays short: 'm', six
        -- 6-byte little-endian integers (version, created, authenticated, last slide, idle timeout,
        -- absolute deadline; 6 bytes hold milliseconds until the year 6400); 'k', the current
        -- secret's digest, followed after a rotation by the previous one's and the end of its grace
        -- window; 'w', the write ids.
        local META_TIMES = '<i6i6i6i6i6i6'
        local GRACE_END = '<i6'
        local DIGEST_BYTES = 16

        local function unpack_meta(m, k, w)
            local v, c, t, l, i, a = struct.unpack(META_TIMES, m)
            local meta = {v = v, c = c, t = t, l = l, i = i, a = a, s = k, w = w or ''}
            if #k > DIGEST_BYTES then
                meta.s = string.sub(k, 1, DIGEST_BYTES)
                meta.p = string.sub(k, DIGEST_BYTES + 1, 2 * DIGEST_BYTES)
                meta.g = struct.unpack(GRACE_END, k, 2 * DIGEST_BYTES + 1)
            end
            return meta
        end

        local function packed_times(meta)
            return struct.pack(META_TIMES, meta.v, meta.c, meta.t, meta.l, meta.i, meta.a)
        end

        local function packed_digests(meta)
            if not meta.p then return meta.s end
            return meta.s .. meta.p .. struct.pack(GRACE_END, meta.g)
        end

        -- The meta of a session, nil when it is gone (a key that exists is a live session, since the
        -- key expires with it, and a script sees time stand still at its start).
        local function read_meta(key)
            local found = redis.call('HMGET', key, 'm', 'k', 'w')
            if not found[1] then return nil end
            return unpack_meta(found[1], found[2], found[3])
        end

        -- 'z': a bound on the size of a session's data as of a version, packed: that version, the
        -- data's bytes (every attribute's name and raw JSON) and its attribute count, each at
        -- least what the data holds. A write checks the limits against it and keeps it, in the same
        -- atomic call, so concurrent writes cannot pass a limit together. A patch adds what it sets
        -- without reading what it replaces (that would cost every write a copy of the old values),
        -- so the bound only grows; when it would pass a limit, the data is measured (HGETALL) and
        -- the bound is exact again. Every write moves the version on, so a 'z' left behind by a
        -- write that did not keep it (sessiond before protocol 3) is stale and the data is measured.
        local SIZE = '<i6i6i6'

        -- The data's exact bytes and attribute count, and each attribute's value length by field.
        local function measure(key)
            local bytes, count, lengths = 0, 0, {}
            local fields = redis.call('HGETALL', key)
            for index = 1, #fields, 2 do
                if string.byte(fields[index], 1) == 46 then -- '.'
                    lengths[fields[index]] = #fields[index + 1]
                    bytes = bytes + #fields[index] - 1 + #fields[index + 1]
                    count = count + 1
                end
            end
            return bytes, count, lengths
        end

        -- The size after a write of the name, raw JSON pairs from ARGV[first]: from (bytes, count)
        -- in 'patch' ('null' deletes) or from nothing in 'replace'. With `lengths` (from measure)
        -- a patch also takes off what it replaces, and the result is exact; without, it is a bound.
        local function size_after(args, first, mode, bytes, count, lengths)
            if mode == 'replace' then bytes, count = 0, 0 end
            for index = first, #args, 2 do
                local name, value = args[index], args[index + 1]
                local old = lengths and lengths['.' .. name]
                if mode == 'patch' and old then
                    bytes = bytes - #name - old
                    count = count - 1
                end
                if mode == 'replace' or value ~= 'null' then
                    bytes = bytes + #name + #value
                    count = count + 1
                end
            end
            return bytes, count
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
            local from = 1
            while true do
                local at = string.find(ids, id, from, true)
                if not at then return false end
                if (at - 1) % WRITE_ID_BYTES == 0 then return true end
                from = at + 1
            end
        end

        local function remember_write(ids, id)
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

        -- Whether two 16-byte secret digests are equal, in time that does not depend on where they
        -- differ: both are read as four 32-bit words (in one unpack: half the cost of two) and
        -- every word is compared.
        local function same_digest(a, b)
            if #a ~= DIGEST_BYTES or #b ~= DIGEST_BYTES then return false end
            local a1, a2, a3, a4, b1, b2, b3, b4 = struct.unpack('<I4I4I4I4I4I4I4I4', a .. b)
            return bit.bor(bit.bxor(a1, b1), bit.bxor(a2, b2), bit.bxor(a3, b3), bit.bxor(a4, b4)) == 0
        end

        -- What a presented secret digest is to the session: 'current', 'grace' (the previous token,
        -- inside its grace window), 'reused' (the previous token after it) or nil (no token of it).
        -- Redis' clock is asked (when `now` is not given) only for the previous token.
        local function token_state(digest, meta, now)
            if same_digest(digest, meta.s) then return 'current' end
            if meta.p and same_digest(digest, meta.p) then
                if (now or now_ms()) < meta.g then return 'grace' end
                return 'reused'
            end
            return nil
        end

        -- The previous token after its grace window: somebody kept a token that should be dead.
        -- Under the 'revoke' policy the session ends here, in the call that saw the reuse.
        -- Returns the reply {'reused', 1 when revoked else 0, user or ''}.
        local function token_reused(keys, place, policy)
            if policy ~= 'revoke' then return {'reused', 0, ''} end
            local user = redis.call('HGET', keys[1], 'u') or ''
            redis.call('DEL', keys[1])
            unindex(place)
            record(place, now_ms(), 'v', user, 'token_reuse')
            return {'reused', 1, user}
        end

        -- Every function that makes or changes a session returns 1 when it did (or had already done: a
        -- repeat) and nil when there is no session for the token; sessiond reads the session in
        -- the same MULTI block with a plain HGETALL, which costs Redis a fraction of handing the
        -- hash back through Lua. An outcome that is the caller's, not a fault, is a reply too, never
        -- an error: {'reused', revoked, user}, {'superseded'}, {'version_mismatch', version}.
        -- SessionCall (Swift) is the only encoder of these arguments and decoder of these replies.

        -- KEYS: session. ARGV: write id, user ('' for none), idle ms, absolute ms, secret digest,
        -- device JSON ('' for none), then name, raw JSON pairs. Returns 1 (also for a repeat).
        redis.register_function('\#(functionPrefix)create', function(keys, args)
            local place = place_of(keys, args)
            local invalid = check_write_id(args[1])
            if invalid then return invalid end
            if #args[5] ~= DIGEST_BYTES then return redis.error_reply('ERR sessiond: a secret digest is 16 bytes') end
            local existing = read_meta(keys[1])
            if existing then
                if has_write(existing.w, args[1]) then return 1 end
                return redis.error_reply('SESSIOND_EXISTS session id collision')
            end
            local now = now_ms()
            local meta = {v = 1, c = now, t = now, l = now, i = tonumber(args[3]), a = now + tonumber(args[4]), s = args[5], w = args[1]}
            local fields = {'m', packed_times(meta), 'k', packed_digests(meta), 'w', meta.w}
            if args[2] ~= '' then
                fields[#fields + 1] = 'u'
                fields[#fields + 1] = args[2]
            end
            if args[6] ~= '' then
                fields[#fields + 1] = 'd'
                fields[#fields + 1] = args[6]
            end
            local bytes = 0
            for index = 7, #args, 2 do
                fields[#fields + 1] = '.' .. args[index]
                fields[#fields + 1] = args[index + 1]
                bytes = bytes + #args[index] + #args[index + 1]
            end
            fields[#fields + 1] = 'z'
            fields[#fields + 1] = struct.pack(SIZE, meta.v, bytes, (#args - 6) / 2)
            in_slices('HSET', keys[1], fields, 200)
            set_deadline(keys, place, meta)
            record(place, now, 'c', args[2], '', now)
            -- Without events no sweeper reads the deadline index, so a create clears its bucket's
            -- index of deadlines that have passed: those sessions' keys are gone.
            if place.member and not place.outbox then
                redis.call('ZREMRANGEBYSCORE', place.deadlines, '-inf', math.floor(now / 1000))
            end
            return 1
        end)

        -- Whether the idle deadline slides now: when `interval` ms ('' never) have passed since the
        -- last slide by Redis' clock. sessiond asks only when its estimate of that clock says so;
        -- this is the check that counts. Each slide is a PEXPIREAT more for Redis and its replicas,
        -- so reads and writes alike slide at most once per touch interval.
        local function slides(interval, meta, now)
            return interval ~= '' and now - meta.l >= tonumber(interval)
        end

        -- KEYS: session. ARGV: minimum ms since the last slide ('' never to slide), secret digest,
        -- 'revoke' or 'reject' (what a reused token does). Slides the idle deadline when that much
        -- has passed. Returns 1, nil when the session is gone or the token is not its own.
        redis.register_function('\#(functionPrefix)touch', function(keys, args)
            local place = place_of(keys, args)
            local meta = read_meta(keys[1])
            if not meta then return nil end
            local now = now_ms()
            if past_deadline(meta, place, now) then return nil end
            local state = token_state(args[2], meta, now)
            if not state then return nil end
            if state == 'reused' then return token_reused(keys, place, args[3]) end
            if slides(args[1], meta, now) then
                meta.l = now
                redis.call('HSET', keys[1], 'm', packed_times(meta))
                set_deadline(keys, place, meta)
            end
            return 1
        end)

        -- KEYS: session. ARGV: write id, secret digest, If-Match condition ('' for none, '*', or
        -- versions joined by ','), 'patch' or 'replace', minimum ms since the last slide before
        -- this write slides the idle deadline too ('' never), the latest Redis' clock can be by sessiond's estimate (ms; '' to
        -- ask Redis' clock in any case), 'revoke' or 'reject' (what a reused token does), the most
        -- data bytes and attributes a session may hold, then name, raw JSON pairs. In 'patch' a raw
        -- 'null' deletes the attribute; 'replace' first removes every attribute. A write that would
        -- leave the data over a limit, and larger than it was, writes nothing and answers
        -- {'too_large', bytes, attributes} (what the data would have been). Returns 1, nil when the
        -- session is gone or the token is not its own. As for a read, the estimate only decides whether to ask Redis' clock (TIME and its
        -- conversion cost a fifth of a write): when it says a slide may be due, Redis' clock decides.
        redis.register_function('\#(functionPrefix)write', function(keys, args)
            local place = place_of(keys, args)
            local invalid = check_write_id(args[1])
            if invalid then return invalid end
            local key = keys[1]
            local found = redis.call('HMGET', key, 'm', 'k', 'w', 'z')
            if not found[1] then return nil end
            local meta = unpack_meta(found[1], found[2], found[3])
            -- Past its deadline but not yet swept: gone. The estimate of Redis' clock spares the
            -- TIME call while the deadline is more than a second away.
            if place.member and (args[6] == '' or tonumber(args[6]) + 1000 >= expiry(meta))
                and past_deadline(meta, place, now_ms()) then
                return nil
            end
            local state = token_state(args[2], meta)
            if not state then return nil end
            if state == 'reused' then return token_reused(keys, place, args[7]) end
            if has_write(meta.w, args[1]) then return 1 end
            if args[3] ~= '' and not version_matches(args[3], meta.v) then
                return {'version_mismatch', meta.v}
            end
            -- The size after this write, from the kept bound; measured when the bound is stale or
            -- the result would pass a limit (a write that leaves the data larger than it was and
            -- over a limit is refused; one that shrinks a session over a lowered limit is not).
            local mode, max_bytes, max_count = args[4], tonumber(args[8]), tonumber(args[9])
            local bytes, count
            local z = found[4]
            if z and #z == 18 then
                local v, kept_bytes, kept_count = struct.unpack(SIZE, z)
                if v == meta.v then bytes, count = size_after(args, 10, mode, kept_bytes, kept_count) end
            end
            if not bytes or bytes > max_bytes or count > max_count then
                local old_bytes, old_count, lengths = measure(key)
                bytes, count = size_after(args, 10, mode, old_bytes, old_count, lengths)
                if (bytes > max_bytes and bytes > old_bytes) or (count > max_count and count > old_count) then
                    return {'too_large', bytes, count}
                end
            end
            local removals = {}
            if mode == 'replace' then
                for _, name in ipairs(redis.call('HKEYS', key)) do
                    if string.byte(name, 1) == 46 then removals[#removals + 1] = name end
                end
            end
            meta.v = meta.v + 1
            local slide = false
            if args[5] ~= '' and (args[6] == '' or tonumber(args[6]) - meta.l >= tonumber(args[5])) then
                local now = now_ms()
                slide = slides(args[5], meta, now)
                if slide then meta.l = now end
            end
            meta.w = remember_write(meta.w, args[1])
            local updates = {'m', packed_times(meta), 'w', meta.w, 'z', struct.pack(SIZE, meta.v, bytes, count)}
            for index = 10, #args, 2 do
                if args[4] == 'patch' and args[index + 1] == 'null' then
                    removals[#removals + 1] = '.' .. args[index]
                else
                    updates[#updates + 1] = '.' .. args[index]
                    updates[#updates + 1] = args[index + 1]
                end
            end
            in_slices('HDEL', key, removals, 400)
            in_slices('HSET', key, updates, 200)
            if slide then set_deadline(keys, place, meta) end
            return 1
        end)

        -- KEYS: session, its tombstone. ARGV: write id, tombstone retention ms, secret digest (''
        -- for an administrator, who needs no token), 'revoke' or 'reject' (what a reused token
        -- does), why it ends (the session.revoked event's reason). Deletes the session. Returns
        -- {1, user or ''} when it existed (or this very delete already removed it), nil when there
        -- was nothing of the token's to delete (a session past its deadline is the sweeper's to
        -- end, as expired), or the reuse reply when the token was the previous one after its grace
        -- window.
        redis.register_function('\#(functionPrefix)delete', function(keys, args)
            local place = place_of(keys, args)
            local invalid = check_write_id(args[1])
            if invalid then return invalid end
            local found = redis.call('HMGET', keys[1], 'u', 'm', 'k')
            local now = place.member and found[2] and now_ms()
            if now and past_deadline(unpack_meta(found[2], found[3]), place, now) then found = {} end
            if found[2] and args[3] ~= '' then
                local state = token_state(args[3], unpack_meta(found[2], found[3]), now)
                if not state then return nil end
                if state == 'reused' then return token_reused(keys, place, args[4]) end
            end
            local user = found[1] or ''
            if found[2] and redis.call('DEL', keys[1]) == 1 then
                unindex(place)
                record(place, now or now_ms(), 'v', user, args[5])
                redis.call('HSET', keys[2], 'w', args[1], 'u', user)
                redis.call('PEXPIRE', keys[2], args[2])
                return {1, user}
            end
            local tombstone = redis.call('HMGET', keys[2], 'w', 'u')
            if tombstone[1] and has_write(tombstone[1], args[1]) then return {1, tombstone[2] or ''} end
            return nil
        end)

        -- KEYS: session. ARGV: write id, the current secret's digest, the new secret's digest, grace
        -- ms, '1' when the user has just authenticated again ('0' otherwise), 'revoke' or 'reject'
        -- (what a reused token does). Gives the session its new secret and remembers the one it
        -- replaces, which keeps working for the grace window; slides the idle deadline. Only the
        -- current token may rotate: the previous one inside its window gets {'superseded'}.
        -- Returns 1, nil when the session is gone.
        redis.register_function('\#(functionPrefix)rotate', function(keys, args)
            local place = place_of(keys, args)
            local invalid = check_write_id(args[1])
            if invalid then return invalid end
            if #args[3] ~= DIGEST_BYTES then return redis.error_reply('ERR sessiond: a secret digest is 16 bytes') end
            local key = keys[1]
            local meta = read_meta(key)
            if not meta then return nil end
            -- A repeat: this write made the current secret.
            if has_write(meta.w, args[1]) and same_digest(args[3], meta.s) then return 1 end
            local now = now_ms()
            if past_deadline(meta, place, now) then return nil end
            local state = token_state(args[2], meta, now)
            if not state then return nil end
            if state == 'reused' then return token_reused(keys, place, args[6]) end
            if state == 'grace' then return {'superseded'} end
            meta.p = meta.s
            meta.s = args[3]
            meta.g = now + tonumber(args[4])
            meta.l = now
            meta.w = remember_write(meta.w, args[1])
            if args[5] == '1' then meta.t = now end
            redis.call('HSET', key, 'm', packed_times(meta), 'k', packed_digests(meta), 'w', meta.w)
            set_deadline(keys, place, meta)
            record(place, now, 'r', redis.call('HGET', key, 'u'), '', now)
            return 1
        end)

        -- KEYS: a user's index (sorted set of session ids scored by absolute deadline + 1 s).
        -- ARGV: id, absolute deadline ms ('' to use now + ARGV[3]), lifetime ms.
        -- Adds the id, drops entries past their absolute deadline (those sessions are certainly
        -- gone), keeps the index alive exactly as long as its longest-lived entry. Returns its size.
        redis.register_function('\#(functionPrefix)index_add', function(keys, args)
            local now = now_ms()
            local deadline = args[2] ~= '' and tonumber(args[2]) or now + tonumber(args[3])
            redis.call('ZADD', keys[1], deadline + 1000, args[1])
            redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', now)
            local last = redis.call('ZRANGE', keys[1], -1, -1, 'WITHSCORES')
            if #last > 0 then redis.call('PEXPIREAT', keys[1], last[2]) end
            return redis.call('ZCARD', keys[1])
        end)

        -- Moving a layout-1 session into layout 2 (SessionStore.migrate): its old key and its new
        -- one are in different hash slots, so the move is a copy and then a removal, each atomic,
        -- and each safe to repeat or to race with another instance moving the same session.
        -- A session's fingerprint: its meta and write ids, which every change alters.
        local function fingerprint(key)
            local found = redis.call('HMGET', key, 'm', 'k', 'w')
            if not found[1] then return nil end
            return found[1] .. found[2] .. (found[3] or '')
        end

        -- KEYS: the session's bucketed key, its bucket's deadline index (and with events its
        -- outbox, for the backstop expiry; moving records no event). ARGV: the fingerprint of the
        -- copy this one replaces ('' for none), the old key's fields and values (HGETALL), then the
        -- place arguments (see place_of). Writes the copy, with the session's expiry
        -- and its index entry, unless the session has ended by now or the new key already holds
        -- another copy than the one named (a copy another instance made, or a write on it since).
        -- Returns 1 when it wrote the copy, 0 when it left the new key as it was.
        redis.register_function('\#(functionPrefix)import', function(keys, args)
            local place = place_of(keys, args)
            local replaces = table.remove(args, 1)
            local existing = fingerprint(keys[1])
            if existing and existing ~= replaces then return 0 end
            local meta
            for position = 1, #args, 2 do
                if args[position] == 'm' then
                    meta = {}
                    meta.v, meta.c, meta.t, meta.l, meta.i, meta.a = struct.unpack(META_TIMES, args[position + 1])
                end
            end
            if not meta then return redis.error_reply('ERR sessiond: a session copy without its meta') end
            if expiry(meta) <= now_ms() then return 0 end
            redis.call('DEL', keys[1])
            in_slices('HSET', keys[1], args, 200)
            set_deadline(keys, place, meta)
            return 1
        end)

        -- KEYS: the session's layout-1 key, its tombstone. ARGV: the fingerprint of the copy made.
        -- Removes the old key if it is still what was copied. Returns 'moved' (removed now, or gone
        -- with no tombstone: another instance moved it), 'changed' (a write came in between: copy
        -- again) or 'deleted' (a delete ended it after the copy was read: the copy must go too).
        redis.register_function('\#(functionPrefix)drop_moved', function(keys, args)
            local current = fingerprint(keys[1])
            if current == nil then
                if redis.call('EXISTS', keys[2]) == 1 then return 'deleted' end
                return 'moved'
            end
            if current ~= args[1] then return 'changed' end
            redis.call('DEL', keys[1])
            return 'moved'
        end)

        -- Expiry (layout 3 with events): the sweeper ends sessions past their deadline from the
        -- deadline index, each with its session.expired event, before their key's backstop TTL.
        local function hex(bytes)
            return (string.gsub(bytes, '.', function(c) return string.format('%02x', string.byte(c)) end))
        end

        -- KEYS: deadline indexes of buckets, then the outbox their events go to (one bucket and
        -- its own outbox on a cluster; on a single server any number, and the event log).
        -- ARGV: the event log's retention ms, the most sessions to end, then each bucket's session
        -- key prefix ('<prefix>{b<n>}:s:'). Ends each session whose deadline has passed (checked
        -- again on the session itself), oldest deadline first, and records session.expired at its
        -- deadline with the user and the deadline that ended it ('idle' or 'absolute'). A session
        -- whose key is gone after its backstop TTL (no sweeper ran for that long) is recorded
        -- without them. Returns {sessions ended, how long the oldest of them was overdue
        -- (ms), 1 when more are overdue, the outbox's length when it is one bucket's own}.
        redis.register_function('\#(functionPrefix)sweep', function(keys, args)
            local now = now_ms()
            local place = {outbox = keys[#keys], retention = tonumber(args[1])}
            local left = tonumber(args[2])
            local ended, overdue, more = 0, 0, 0
            for bucket = 1, #keys - 1 do
                local due = redis.call('ZRANGEBYSCORE', keys[bucket], '-inf', math.floor(now / 1000),
                    'WITHSCORES', 'LIMIT', 0, left + 1)
                for position = 1, #due, 2 do
                    if left == 0 then
                        more = 1
                        break
                    end
                    local member = due[position]
                    place.member = member
                    overdue = math.max(overdue, now - tonumber(due[position + 1]) * 1000)
                    local key = args[2 + bucket] .. hex(member)
                    local found = redis.call('HMGET', key, 'm', 'k', 'w', 'u')
                    if not found[1] then
                        -- Gone before its backstop: a layout-2 session (its key expired exactly at
                        -- its deadline, and it had no session.created either); nothing to record.
                        redis.call('ZREM', keys[bucket], member)
                        local deadline = tonumber(due[position + 1]) * 1000
                        if now - deadline >= BACKSTOP_MS - 1000 then
                            record(place, now, 'e', '', '', deadline)
                            ended, left = ended + 1, left - 1
                        end
                    else
                        local meta = unpack_meta(found[1], found[2], found[3])
                        if expiry(meta) <= now then
                            redis.call('DEL', key)
                            redis.call('ZREM', keys[bucket], member)
                            local reason = 'idle'
                            if meta.a <= meta.l + meta.i then reason = 'absolute' end
                            record(place, now, 'e', found[4], reason, expiry(meta))
                            ended, left = ended + 1, left - 1
                        else
                            -- The index is kept exact with every slide; this repairs one that is not.
                            redis.call('ZADD', keys[bucket], deadline_score(meta), member)
                        end
                    end
                end
            end
            -- On a cluster the outbox is the bucket's own: how many events wait there to be relayed.
            local waiting = 0
            if #keys == 2 then waiting = redis.call('XLEN', keys[2]) end
            return {ended, overdue, more, waiting}
        end)

        -- KEYS: none: it reads keys of many slots, those of the buckets this server serves, which
        -- sessiond names (on a cluster it asks each primary about its own buckets; a bucket whose
        -- slot moved away since is answered as due, so that the sweep goes where it lives now).
        -- ARGV: how many deadline indexes follow, those indexes, then outboxes whose length to
        -- report. Returns {positions (1-based, among the indexes) of the indexes holding a
        -- deadline that has passed, positions (among the outboxes) of those holding events}.
        redis.register_function{function_name = '\#(functionPrefix)due', flags = {'no-writes', 'allow-cross-slot-keys'},
            callback = function(keys, args)
            local now = math.floor(now_ms() / 1000)
            local count = tonumber(args[1])
            local due, waiting = {}, {}
            for position = 1, count do
                local found = redis.pcall('ZRANGEBYSCORE', args[1 + position], '-inf', now, 'LIMIT', 0, 1)
                if found.err or #found > 0 then due[#due + 1] = position end
            end
            for position = 1, #args - 1 - count do
                local length = redis.pcall('XLEN', args[1 + count + position])
                if type(length) ~= 'number' or length > 0 then waiting[#waiting + 1] = position end
            end
            return {due, waiting}
        end}

        -- KEYS: the sweeper's leases (one slot). ARGV: the instance asking, the leases' lifetime ms
        -- (0 gives up those it holds). Takes each lease nobody holds and extends each the instance
        -- holds. Returns per lease 1 when the instance holds it now, 0 when another does.
        redis.register_function('\#(functionPrefix)lease', function(keys, args)
            local held = {}
            for position, key in ipairs(keys) do
                local holder = redis.call('GET', key)
                held[position] = 0
                if args[2] == '0' then
                    if holder == args[1] then redis.call('DEL', key) end
                elseif not holder or holder == args[1] then
                    redis.call('SET', key, args[1], 'PX', args[2])
                    held[position] = 1
                end
            end
            return held
        end)

        -- On a cluster each bucket records its events in its own outbox (the change's hash slot);
        -- the relay moves them, in order, into the one event log consumers read.
        -- KEYS: the event log. ARGV: retention ms, the bucket, then per event its outbox entry id
        -- and its five fields' values (t s u r a). Appends each, with 'o' '<bucket>-<entry id>' (the
        -- event's id, the same however often it is relayed). Returns the number appended.
        redis.register_function('\#(functionPrefix)log_append', function(keys, args)
            local now = now_ms()
            local appended = 0
            for first = 3, #args, 6 do
                redis.call('XADD', keys[1], 'MINID', '~', now - tonumber(args[1]), '*',
                    't', args[first + 1], 's', args[first + 2], 'u', args[first + 3], 'r', args[first + 4],
                    'a', args[first + 5], 'o', args[2] .. '-' .. args[first])
                appended = appended + 1
            end
            return appended
        end)

        -- KEYS: the event log. ARGV: the cursor to read after ('' from the oldest event kept), the
        -- most events to return. Returns {'expired'} when events after the cursor have been
        -- trimmed, else {'events', next cursor, entries (XRANGE shape)}; the next cursor is the
        -- last entry's id, or the cursor given (without one: the log's last id, '0-0' when empty)
        -- when nothing is new.
        redis.register_function{function_name = '\#(functionPrefix)events_read', flags = {'no-writes'},
            callback = function(keys, args)
            local log, after, count = keys[1], args[1], tonumber(args[2])
            if after == '' then
                local entries = redis.call('XRANGE', log, '-', '+', 'COUNT', count)
                if #entries > 0 then return {'events', entries[#entries][1], entries} end
                if redis.call('EXISTS', log) == 0 then return {'events', '0-0', entries} end
                local info = redis.call('XINFO', 'STREAM', log)
                for position = 1, #info, 2 do
                    if info[position] == 'last-generated-id' then return {'events', info[position + 1], entries} end
                end
                return {'events', '0-0', entries}
            end
            local entries = redis.call('XRANGE', log, '(' .. after, '+', 'COUNT', count)
            -- Trimmed past the cursor: the log has lost entries and its first one is after the
            -- cursor (the log loses entries only from its head, by retention).
            local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
            if first and redis.call('XRANGE', log, after, after)[1] == nil then
                local info = redis.call('XINFO', 'STREAM', log)
                local added, length = 0, 0
                for position = 1, #info, 2 do
                    if info[position] == 'entries-added' then added = info[position + 1] end
                    if info[position] == 'length' then length = info[position + 1] end
                end
                if added > length and #entries > 0 and entries[1][1] == first[1] then return {'expired'} end
            end
            if #entries == 0 then return {'events', after, entries} end
            return {'events', entries[#entries][1], entries}
        end}

        -- The fleet: one hash per key prefix that every instance of every version shares, so its
        -- format never changes: 'active' (the layout sessions are written in), 'legacy' ('1' while
        -- instances older than announcements may still run; only `sessiond --finalize-layout`
        -- clears it) and one field 'i:<instance>' per live instance, 'min max protocol expires'
        -- (the layouts it supports, its function protocol, and when its announcement lapses, by
        -- Redis' clock in ms). Which layout to write, when to move on and when to refuse is decided
        -- in Swift (FleetLayout); these functions only read and change the hash atomically.
        local function live_members(fleet, now)
            local found = redis.call('HGETALL', fleet)
            local members, lapsed = {}, {}
            for position = 1, #found, 2 do
                local name = found[position]
                if string.sub(name, 1, 2) == 'i:' then
                    local expires = tonumber(string.match(found[position + 1], '(%d+)$'))
                    if expires and expires > now then
                        members[#members + 1] = string.sub(name, 3)
                        members[#members + 1] = found[position + 1]
                    else
                        lapsed[#lapsed + 1] = name
                    end
                end
            end
            in_slices('HDEL', fleet, lapsed, 400)
            return members
        end

        local function fleet_state(fleet, now)
            local state = redis.call('HMGET', fleet, 'active', 'legacy')
            return {state[1] or '', state[2] or '', live_members(fleet, now)}
        end

        -- KEYS: the fleet hash. ARGV: instance name, lowest and highest layout it supports, its
        -- function protocol, how long the announcement lasts (ms; 0 withdraws it, '' only reads).
        -- Returns {active or '', legacy or '', {name, 'min max protocol expires', ...}}.
        redis.register_function('\#(functionPrefix)fleet_announce', function(keys, args)
            local now = now_ms()
            if args[5] == '0' then
                redis.call('HDEL', keys[1], 'i:' .. args[1])
            elseif args[5] ~= '' then
                redis.call('HSET', keys[1], 'i:' .. args[1],
                    args[2] .. ' ' .. args[3] .. ' ' .. args[4] .. ' ' .. (now + tonumber(args[5])))
            end
            return fleet_state(keys[1], now)
        end)

        -- KEYS: the fleet hash. ARGV: the active layout expected ('' for none yet), the new one,
        -- the new legacy mark ('1', '0' to clear it, '' to keep it). Changes nothing unless the
        -- active layout is still the one expected, and never lowers it. Returns the fleet state
        -- as fleet_announce does.
        redis.register_function('\#(functionPrefix)fleet_set', function(keys, args)
            local now = now_ms()
            local active = redis.call('HGET', keys[1], 'active') or ''
            if active == args[1] and (active == '' or tonumber(args[2]) >= tonumber(active)) then
                redis.call('HSET', keys[1], 'active', args[2])
                if args[3] == '1' then redis.call('HSET', keys[1], 'legacy', '1') end
                if args[3] == '0' then redis.call('HDEL', keys[1], 'legacy') end
            end
            return fleet_state(keys[1], now)
        end)
        """#)
}
