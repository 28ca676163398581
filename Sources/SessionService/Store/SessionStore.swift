import Logging
import RedisClient

/// The session semantics on top of Redis: creation, reads that slide the idle deadline, attribute
/// writes with optimistic concurrency, rotation, revocation and the per-user index.
///
/// Single-session operations are one `FCALL` (one round trip, atomic). Work that spans a session and
/// its user's index is done as separate calls in an order that never hides a live session from the
/// index that revoke-all relies on: the index entry is written before the session and removed after it.
/// Index entries of sessions that died are removed lazily (listing, the per-user cap) and by their
/// absolute deadline.
struct SessionStore: Sendable {
    /// Defaults and limits the store applies.
    struct Settings: Sendable {
        var idleTimeoutSeconds: Int
        var absoluteTimeoutSeconds: Int
        /// Seconds that must pass before a read slides the idle deadline again (0 = every read).
        var touchIntervalSeconds: Int
        /// Live sessions a user may hold (0 = no cap); one more revokes the oldest.
        var maxSessionsPerUser: Int
        /// How long a delete's or a rotation's tombstone keeps its write id: longer than any retry
        /// of that write can come (see ``SessionFunctions``).
        var tombstoneMilliseconds: Int
        /// Where every key lives.
        var keys: SessionKeys
    }

    let redis: RedisClient
    let settings: Settings
    let logger: Logger
    let clock: RedisClock
    private var keys: SessionKeys { settings.keys }

    init(redis: RedisClient, settings: Settings, logger: Logger) {
        self.redis = redis
        self.settings = settings
        self.logger = logger
        self.clock = RedisClock(redis: redis)
    }

    // MARK: - One session

    /// Creates a session; with a user, the index entry is written first.
    func create(user: String?, data: [Session.Attribute], idleTimeout: Int?, absoluteTimeout: Int?) async throws(SessionStoreError) -> (SessionToken, Session) {
        let token = try newToken()
        let writeID = WriteID()
        let idleMilliseconds = Int64(idleTimeout ?? settings.idleTimeoutSeconds) * 1000
        let absoluteMilliseconds = Int64(absoluteTimeout ?? settings.absoluteTimeoutSeconds) * 1000
        var indexSize: Int64 = 0
        if let user {
            let reply = try await call(.userIndexAdd, keys: [keys.userIndex(user)], [
                RedisArgument(token.id.hex), "", RedisArgument(absoluteMilliseconds),
            ])
            indexSize = reply.integer ?? 0
        }
        let arguments: [RedisArgument] = [
            writeID.argument, RedisArgument(user ?? ""), RedisArgument(idleMilliseconds), RedisArgument(absoluteMilliseconds),
        ] + data.redisArguments
        let reply = try await call(.create, keys: [keys.session(token.id)], arguments)
        let session = try Session(id: token.id, fields: reply)
        if let user, settings.maxSessionsPerUser > 0, indexSize > settings.maxSessionsPerUser {
            try await enforceCap(user: user, keeping: token.id)
        }
        return (token, session)
    }

    /// Reads a session with one plain `HGETALL`: Redis never returns a key at or past its expiry,
    /// which is the session's deadline (see ``SessionFunctions``). When `touch` and the touch
    /// interval has passed since the last slide, `session_touch` then slides the idle deadline
    /// (a write: in the replicated mode it waits for the replicas).
    func read(_ id: SessionID, touch: Bool) async throws(SessionStoreError) -> Session {
        let key = keys.session(id)
        let interval = Int64(settings.touchIntervalSeconds) * 1000
        if touch, interval == 0 {
            // Every read slides: the function reads too, in one round trip.
            let touched = try await call(.touch, keys: [key], ["0"])
            guard !touched.isNull else { throw .notFound }
            return try Session(id: id, fields: touched)
        }
        let reply = try await send(["HGETALL", RedisArgument(key)])
        guard let fields = reply.array, !fields.isEmpty else { throw .notFound }
        let session = try Session(id: id, fields: reply)
        guard touch else { return session }
        let now = try await withSessionStoreErrors { try await clock.now() }
        guard now - session.lastSeenAt >= interval else { return session }
        let touched = try await call(.touch, keys: [key], [RedisArgument(interval)])
        guard !touched.isNull else { throw .notFound }
        return try Session(id: id, fields: touched)
    }

    /// Sets each named attribute (a raw `null` deletes it), atomically; version + 1.
    func patch(_ id: SessionID, changes: [Session.Attribute], ifMatch: IfMatch?) async throws(SessionStoreError) -> Session {
        try await write(id, mode: "patch", attributes: changes, ifMatch: ifMatch)
    }

    /// Replaces the whole data object, atomically; version + 1.
    func replaceData(_ id: SessionID, data: [Session.Attribute], ifMatch: IfMatch?) async throws(SessionStoreError) -> Session {
        try await write(id, mode: "replace", attributes: data, ifMatch: ifMatch)
    }

    private func write(_ id: SessionID, mode: String, attributes: [Session.Attribute], ifMatch: IfMatch?) async throws(SessionStoreError) -> Session {
        let arguments: [RedisArgument] = [
            WriteID().argument, RedisArgument(ifMatch?.functionArgument ?? ""), RedisArgument(mode),
        ] + attributes.redisArguments
        let reply = try await call(.write, keys: [keys.session(id)], arguments)
        guard !reply.isNull else { throw .notFound }
        return try Session(id: id, fields: reply)
    }

    /// Ends a session (idempotent); its index entry is removed after it. Returns whether it existed.
    @discardableResult
    func delete(_ id: SessionID) async throws(SessionStoreError) -> Bool {
        let reply = try await call(.delete, keys: [keys.session(id), keys.tombstone(id)], deleteArguments(WriteID()))
        guard let parts = reply.array, parts.count == 2 else { throw .corrupt("unexpected reply to session_delete") }
        if let user = parts[1].string, !user.isEmpty {
            _ = try await send(["ZREM", RedisArgument(keys.userIndex(user)), RedisArgument(id.hex)])
        }
        return parts[0].integer == 1
    }

    /// Gives the session a new token and id; the old token stops working at once. Data, user,
    /// version, creation time and absolute deadline are kept; the idle deadline slides.
    ///
    /// The session is taken out under its old id, indexed under the new one, put back under the new
    /// id, and only then is the old index entry removed. Each step may be repeated (one write id for
    /// all), so a failover in between costs a retry; past the failover deadline the rotation fails
    /// closed: the session is lost rather than duplicated.
    func rotate(_ id: SessionID) async throws(SessionStoreError) -> (SessionToken, Session) {
        let token = try newToken()
        let writeID = WriteID()
        let taken = try await call(.take, keys: [keys.session(id), keys.tombstone(id)], deleteArguments(writeID))
        guard !taken.isNull else { throw .notFound }
        let old = try Session(id: id, fields: taken)
        if let user = old.user {
            _ = try await call(.userIndexAdd, keys: [keys.userIndex(user)], [
                RedisArgument(token.id.hex), RedisArgument(old.absoluteExpiresAt), "0",
            ])
        }
        let fields = (taken.array ?? []).compactMap { $0.bytes.map { RedisArgument(bytes: $0) } }
        let reply = try await call(.import, keys: [keys.session(token.id)], [writeID.argument] + fields)
        if let user = old.user {
            _ = try await send(["ZREM", RedisArgument(keys.userIndex(user)), RedisArgument(id.hex)])
        }
        guard !reply.isNull else { throw .notFound }  // reached its absolute deadline meanwhile
        return (token, try Session(id: token.id, fields: reply))
    }

    // MARK: - A user's sessions

    /// The user's live sessions, oldest first; index entries of sessions that are gone are removed.
    func sessions(ofUser user: String) async throws(SessionStoreError) -> [Session] {
        let indexKey = keys.userIndex(user)
        let ids = try await indexedIDs(indexKey)
        let found = try await withSessionStoreErrors {
            try await withThrowingTaskGroup(of: (String, Session?).self) { group in
                for id in ids {
                    group.addTask {
                        guard let sessionID = SessionID(parsing: id) else { return (id, nil) }
                        do {
                            return (id, try await read(sessionID, touch: false))
                        } catch SessionStoreError.notFound {
                            return (id, nil)
                        }
                    }
                }
                var results: [(String, Session?)] = []
                for try await result in group { results.append(result) }
                return results
            }
        }
        let dead = found.filter { $0.1 == nil }.map { RedisArgument($0.0) }
        if !dead.isEmpty {
            _ = try await send(["ZREM", RedisArgument(indexKey)] + dead)
        }
        // A session whose user field differs was indexed under a user it no longer belongs to: skip it.
        return found.compactMap { $0.1 }.filter { $0.user == user }.sorted { ($0.createdAt, $0.id.hex) < ($1.createdAt, $1.id.hex) }
    }

    /// Revokes every session of the user; returns how many were live. Only the ids revoked are
    /// removed from the index, so a session created concurrently stays indexed.
    func revokeAll(ofUser user: String) async throws(SessionStoreError) -> Int {
        let indexKey = keys.userIndex(user)
        let ids = try await indexedIDs(indexKey)
        let writeID = WriteID()
        let revoked = try await withSessionStoreErrors {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for id in ids {
                    group.addTask {
                        guard let sessionID = SessionID(parsing: id) else { return 0 }
                        let reply = try await call(
                            .delete, keys: [keys.session(sessionID), keys.tombstone(sessionID)], deleteArguments(writeID)
                        )
                        return reply.array?.first?.integer == 1 ? 1 : 0
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        if !ids.isEmpty {
            _ = try await send(["ZREM", RedisArgument(indexKey)] + ids.map { RedisArgument($0) })
        }
        return revoked
    }

    /// Revokes the user's oldest live sessions beyond the cap, never `keeping`.
    private func enforceCap(user: String, keeping newest: SessionID) async throws(SessionStoreError) {
        let live = try await sessions(ofUser: user)
        let excess = live.count - settings.maxSessionsPerUser
        guard excess > 0 else { return }
        for session in live.filter({ $0.id != newest }).prefix(excess) {
            try await delete(session.id)
            logger.info("revoked the oldest session: the user is at the per-user cap", metadata: ["session": "\(session.id)"])
        }
    }

    /// Every id in a user's index, live or not.
    private func indexedIDs(_ indexKey: String) async throws(SessionStoreError) -> [String] {
        try await send(["ZRANGE", RedisArgument(indexKey), "0", "-1"]).array?.compactMap { $0.string } ?? []
    }

    /// A fresh token; a CSPRNG failure is a server fault, never a weaker token.
    private func newToken() throws(SessionStoreError) -> SessionToken {
        do {
            return try SessionToken.generate()
        } catch {
            throw .corrupt("\(error)")
        }
    }

    // MARK: - Health

    /// What the store runs on: one primary, or a cluster's primaries.
    enum Topology: Sendable {
        case primary(RedisPrimaryStatus)
        case cluster(RedisClusterStatus)
    }

    /// Proves Redis takes writes (a short-lived key) and describes the primary in use, or every
    /// primary of the cluster.
    func checkWritable(instance: String) async throws(SessionStoreError) -> Topology {
        _ = try await send(["SET", RedisArgument(keys.readinessProbe), RedisArgument(instance), "PX", "10000"])
        return try await withSessionStoreErrors {
            if let cluster = try await redis.clusterStatus() { return .cluster(cluster) }
            return .primary(try await redis.primaryStatus())
        }
    }

    // MARK: - Redis

    /// Calls one of the session functions with the policy ``SessionFunction`` gives it: every call
    /// may be repeated after a failure whose outcome is unknown, and waits for replicas in the
    /// replicated mode.
    private func call(_ function: SessionFunction, keys: [String], _ arguments: [RedisArgument]) async throws(SessionStoreError) -> RESPValue {
        try await withSessionStoreErrors {
            try await redis.fcall(
                function.rawValue, keys: keys.map { RedisArgument($0) }, arguments: arguments, idempotent: true, durable: true
            )
        }
    }

    /// The arguments of `session_delete` and `session_take`.
    private func deleteArguments(_ writeID: WriteID) -> [RedisArgument] {
        [writeID.argument, RedisArgument(settings.tombstoneMilliseconds)]
    }

    /// Plain commands here are all idempotent (HGETALL, ZRANGE, ZREM, SET of the readiness key);
    /// the index removals wait for replicas in replicated mode.
    private func send(_ command: [RedisArgument]) async throws(SessionStoreError) -> RESPValue {
        try await withSessionStoreErrors {
            try await redis.send(command, idempotent: true, durable: command.first == RedisArgument("ZREM"))
        }
    }

    /// Runs Redis work, mapping every failure to ``SessionStoreError``.
    private func withSessionStoreErrors<T>(_ body: () async throws -> T) async throws(SessionStoreError) -> T {
        do {
            return try await body()
        } catch let error as SessionStoreError {
            throw error
        } catch let error as RedisClientError where error.code == .durabilityTimeout {
            throw .notDurable(error)
        } catch let error as RedisClientError where error.serverErrorPrefix == "SESSIOND_VERSION_MISMATCH" {
            throw .versionMismatch(current: Int64(error.message.split(separator: " ").last ?? "") ?? 0)
        } catch let error as RedisClientError where error.code == .serverError && !error.isTransientServerError {
            throw .corrupt("Redis refused a command: \(error.message)")
        } catch let error as RedisClientError {
            throw .unavailable(error)
        } catch is CancellationError {
            throw .unavailable(RedisClientError(code: .connectionClosed, message: "the request was cancelled"))
        } catch {
            throw .corrupt("\(error)")
        }
    }
}

/// The id of one request's writes: 8 random bytes, so that Redis can tell a repeated write from a
/// new one (see ``SessionFunctions``). Not a secret: uniqueness among a session's recent writes
/// is all it needs.
struct WriteID: Sendable {
    let argument: RedisArgument

    init() {
        var generator = SystemRandomNumberGenerator()
        let value: UInt64 = generator.next()
        argument = withUnsafeBytes(of: value) { RedisArgument(bytes: Array($0)) }
    }
}

extension [Session.Attribute] {
    /// Name, raw JSON, name, raw JSON, ...: the attributes as the session functions take them.
    var redisArguments: [RedisArgument] {
        var arguments: [RedisArgument] = []
        arguments.reserveCapacity(count * 2)
        for attribute in self {
            arguments.append(RedisArgument(attribute.name))
            arguments.append(RedisArgument(bytes: attribute.raw))
        }
        return arguments
    }
}

extension RedisClientError {
    /// Server errors that mean "not now" rather than "never": retrying later (or elsewhere) can succeed.
    var isTransientServerError: Bool {
        switch serverErrorPrefix {
        case "READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "OOM": true
        default: false
        }
    }
}
