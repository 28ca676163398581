import Logging
import Metrics
import RedisClient

/// The session semantics on top of Redis: creation, reads that slide the idle deadline, attribute
/// writes with optimistic concurrency, rotation with a grace window and reuse detection,
/// revocation and the per-user index.
///
/// Single-session operations are one `FCALL` (one round trip, atomic) or one plain `HGETALL`. Work
/// that spans a session and its user's index is done as separate calls in an order that never hides
/// a live session from the index that revoke-all relies on: the index entry is written before the
/// session and removed after it. A session keeps its id for life (a rotation changes only the
/// token's secret), so its index entry never moves. Index entries of sessions that died are removed
/// lazily (listing, the per-user cap) and by their absolute deadline.
struct SessionStore: Sendable {
    /// Defaults and limits the store applies.
    struct Settings: Sendable {
        var idleTimeout: Duration
        var absoluteTimeout: Duration
        /// How long must pass before a read or a write slides the idle deadline again (zero: every one).
        var touchInterval: Duration
        /// Live sessions a user may hold (0 = no cap); one more revokes the oldest.
        var maxSessionsPerUser: Int
        /// How long a delete's tombstone keeps its write id: longer than any retry of that write
        /// can come (see ``SessionFunctions``).
        var tombstoneRetention: Duration
        /// How long the previous token keeps working after a rotation, unless the rotation says.
        var rotationGrace: Duration
        /// What a reused token (the previous one after its grace window) does to its session.
        var reusePolicy: TokenReusePolicy
        /// How large a session may grow.
        var limits: SessionLimits
        /// Where every key lives.
        var keys: SessionKeys
    }

    let redis: RedisClient
    let settings: Settings
    let logger: Logger
    let clock: RedisClock
    /// `sessiond_token_reuse_total{action}`.
    private let reuses: Counter
    private var keys: SessionKeys { settings.keys }

    init(redis: RedisClient, settings: Settings, logger: Logger, metricsFactory: any MetricsFactory) {
        self.redis = redis
        self.settings = settings
        self.logger = logger
        self.clock = RedisClock(redis: redis)
        self.reuses = Counter(
            label: "sessiond_token_reuse_total", dimensions: [("action", settings.reusePolicy == .revoke ? "revoked" : "rejected")],
            factory: metricsFactory
        )
    }

    // MARK: - One session

    /// Creates a session; with a user, the index entry is written first.
    func create(
        user: String?, device: [UInt8]?, data: [Session.Attribute], idleTimeout: Int?, absoluteTimeout: Int?
    ) async throws(SessionStoreError) -> (SessionToken, Session) {
        try settings.limits.check(newSessionData: data)
        let token = try newToken()
        let idle = idleTimeout.map { Duration.seconds($0) } ?? settings.idleTimeout
        let absolute = absoluteTimeout.map { Duration.seconds($0) } ?? settings.absoluteTimeout
        var indexSize: Int64 = 0
        if let user, case .indexSize(let size) = try await call(.indexAdd(user: user, token.id, lifetime: absolute)) {
            indexSize = size
        }
        let creation = SessionCall.create(
            token.id, WriteID(), user: user, idleTimeout: idle, absoluteTimeout: absolute, secretDigest: token.secretDigest,
            device: device, data: data
        )
        guard let session = try await callThenRead(creation).session else { throw .corrupt("\(creation.function) made no session") }
        if let user, settings.maxSessionsPerUser > 0, indexSize > settings.maxSessionsPerUser {
            try await enforceCap(user: user, keeping: token.id)
        }
        return (token, session)
    }

    /// The session behind `token`, read with one plain `HGETALL`: Redis never returns a key at or
    /// past its expiry, which is the session's deadline (see ``SessionFunctions``), and the secret's
    /// digest is compared here. When `touch` and the touch interval has passed since the last slide,
    /// `session_touch` then slides the idle deadline (a write: in the replicated mode it waits for
    /// the replicas). The previous token is judged by `session_touch` too: only Redis' clock decides
    /// whether its grace window has ended.
    /// - Parameter maxAuthAge: milliseconds; a session authenticated longer ago is refused with
    ///   ``SessionStoreError/reauthenticationRequired(authenticatedAt:)`` and left as it is.
    func read(_ token: SessionToken, touch: Bool, maxAuthAge: Int64? = nil) async throws(SessionStoreError) -> Session {
        let interval = settings.touchInterval
        if touch, interval == .zero, maxAuthAge == nil {
            // Every read slides: the function reads too, in one round trip.
            return try await self.touch(token, slide: .after(.zero))
        }
        var session = try await read(token.id)
        switch session.recognise(token) {
        case .current: break
        case .previous: session = try await self.touch(token, slide: .never)
        case .none: throw .notFound
        }
        guard touch || maxAuthAge != nil else { return session }
        let now = try await withSessionStoreErrors { try await clock.now() }
        if let maxAuthAge, now - session.authenticatedAt > maxAuthAge {
            throw .reauthenticationRequired(authenticatedAt: session.authenticatedAt)
        }
        guard touch, now - session.lastSeenAt >= interval.milliseconds else { return session }
        return try await self.touch(token, slide: .after(interval))
    }

    /// The session with this id, for an administrator (no token, never slides).
    func read(_ id: SessionID) async throws(SessionStoreError) -> Session {
        let reply = try await send(["HGETALL", RedisArgument(keys.session(id))])
        guard let fields = reply.array, !fields.isEmpty else { throw .notFound }
        return try Session(id: id, fields: reply)
    }

    private func touch(_ token: SessionToken, slide: SessionCall.Slide) async throws(SessionStoreError) -> Session {
        try await tokenCall(.touch(token.id, holder(of: token), slide: slide), token: token)
    }

    /// Sets each named attribute (a raw `null` deletes it), atomically; version + 1.
    func patch(_ token: SessionToken, changes: [Session.Attribute], ifMatch: IfMatch?) async throws(SessionStoreError) -> Session {
        try await write(token, mode: .patch, attributes: changes, ifMatch: ifMatch)
    }

    /// Replaces the whole data object, atomically; version + 1.
    func replaceData(_ token: SessionToken, data: [Session.Attribute], ifMatch: IfMatch?) async throws(SessionStoreError) -> Session {
        try await write(token, mode: .replace, attributes: data, ifMatch: ifMatch)
    }

    /// Slides the idle deadline too when the touch interval has passed since the last slide (by
    /// Redis' clock, asked only when this host's estimate of it says so, as for a read).
    private func write(_ token: SessionToken, mode: SessionCall.WriteMode, attributes: [Session.Attribute], ifMatch: IfMatch?) async throws(SessionStoreError) -> Session {
        try settings.limits.checkNames(attributes)
        let interval = settings.touchInterval
        // With an interval of 0 every write slides: no estimate, Redis' clock in any case.
        let estimate = interval == .zero ? nil : try await withSessionStoreErrors { try await clock.now() }
        return try await tokenCall(
            .write(token.id, WriteID(), holder(of: token), ifMatch: ifMatch, mode: mode, slide: .after(interval), clockEstimate: estimate,
                limits: settings.limits, attributes: attributes
            ),
            token: token
        )
    }

    /// Ends the session of `token` (idempotent; a token that is none of the session's ends
    /// nothing); its index entry is removed after it.
    func delete(_ token: SessionToken) async throws(SessionStoreError) {
        _ = try await delete(token.id, holder: holder(of: token))
    }

    /// Ends a session by id, for an administrator (idempotent). Returns whether it existed.
    @discardableResult
    func delete(_ id: SessionID) async throws(SessionStoreError) -> Bool {
        try await delete(id, holder: nil)
    }

    private func delete(_ id: SessionID, holder: SessionCall.Holder?) async throws(SessionStoreError) -> Bool {
        switch try await call(.delete(id, WriteID(), holder, tombstoneRetention: settings.tombstoneRetention)) {
        case .deleted(let user):
            try await removeFromIndex(id, user: user)
            return true
        case .tokenReused(let revoked, let user):
            try await reused(id, revoked: revoked, user: user)
            return false
        default:
            return false
        }
    }

    /// Gives the session a new token; its id, data, user, version, creation time and absolute
    /// deadline stay, the idle deadline slides. One atomic rotation on the session's own key, so a
    /// failure leaves it reachable by exactly one of its tokens. The previous token keeps reading
    /// and writing for `graceSeconds` (default from configuration), never rotates, and counts as
    /// reused after that.
    /// - Parameter reauthenticated: the user has just proved who they are: `authenticated_at` is now.
    func rotate(_ token: SessionToken, graceSeconds: Int?, reauthenticated: Bool) async throws(SessionStoreError) -> (SessionToken, Session) {
        let newToken = try newToken(for: token.id)
        let grace = graceSeconds.map { Duration.seconds($0) } ?? settings.rotationGrace
        let session = try await tokenCall(
            .rotate(token.id, WriteID(), holder(of: token), newSecretDigest: newToken.secretDigest, grace: grace, reauthenticated: reauthenticated),
            token: token
        )
        return (newToken, session)
    }

    private func holder(of token: SessionToken) -> SessionCall.Holder {
        SessionCall.Holder(secretDigest: token.secretDigest, onReuse: settings.reusePolicy)
    }

    /// A call acting for `token`'s holder on its session, and the session it leaves. A reused token
    /// (which the call itself revoked under the `revoke` policy) is reported; either way the caller
    /// sees no session.
    private func tokenCall(_ call: SessionCall, token: SessionToken) async throws(SessionStoreError) -> Session {
        let (outcome, session) = try await callThenRead(call)
        if case .tokenReused(let revoked, let user) = outcome { try await reused(token.id, revoked: revoked, user: user) }
        guard let session else { throw .notFound }
        return session
    }

    /// A rotated-away token came back after its grace window: counted, logged, and when the call
    /// revoked the session, its index entry removed.
    private func reused(_ id: SessionID, revoked: Bool, user: String?) async throws(SessionStoreError) {
        reuses.increment()
        logger.warning(
            revoked
                ? "a rotated-away token was presented after its grace window: the session is revoked"
                : "a rotated-away token was presented after its grace window: refused",
            metadata: ["session": "\(id)"]
        )
        if revoked { try await removeFromIndex(id, user: user) }
    }

    /// Removes an ended session from its user's index (after the session itself: see the type's doc).
    private func removeFromIndex(_ id: SessionID, user: String?) async throws(SessionStoreError) {
        guard let user else { return }
        _ = try await send(["ZREM", RedisArgument(keys.userIndex(user)), RedisArgument(id.hex)], options: SessionCall.options)
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
                            return (id, try await read(sessionID))
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
            _ = try await send(["ZREM", RedisArgument(indexKey)] + dead, options: SessionCall.options)
        }
        // A session whose user field differs was indexed under a user it no longer belongs to: skip it.
        return found.compactMap { $0.1 }.filter { $0.user == user }.sorted { ($0.createdAt, $0.id.hex) < ($1.createdAt, $1.id.hex) }
    }

    /// Revokes every session of the user but `kept`; returns how many were live. Only the ids
    /// revoked are removed from the index, so a session created concurrently stays indexed.
    func revokeAll(ofUser user: String, except kept: SessionID? = nil) async throws(SessionStoreError) -> Int {
        let indexKey = keys.userIndex(user)
        let ids = try await indexedIDs(indexKey).filter { $0 != kept?.hex }
        let writeID = WriteID()
        let revoked = try await withSessionStoreErrors {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for id in ids {
                    group.addTask {
                        guard let sessionID = SessionID(parsing: id) else { return 0 }
                        let outcome = try await call(.delete(sessionID, writeID, nil, tombstoneRetention: settings.tombstoneRetention))
                        return if case .deleted = outcome { 1 } else { 0 }
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        if !ids.isEmpty {
            _ = try await send(["ZREM", RedisArgument(indexKey)] + ids.map { RedisArgument($0) }, options: SessionCall.options)
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

    /// A fresh token, for a new session or (with `id`) a rotation; a CSPRNG failure is a server
    /// fault, never a weaker token.
    private func newToken(for id: SessionID? = nil) throws(SessionStoreError) -> SessionToken {
        do {
            if let id { return try SessionToken.generate(for: id) }
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

    /// Calls one session function, with the policy every session call follows (``SessionCall/options``).
    private func call(_ call: SessionCall) async throws(SessionStoreError) -> SessionCall.Outcome {
        let reply = try await withSessionStoreErrors {
            try await redis.fcall(call.function, keys: call.keys(keys), arguments: call.arguments, options: SessionCall.options)
        }
        return try call.decode(reply)
    }

    /// Calls a function on one session and reads the session it leaves, in one `MULTI` block; the
    /// session is `nil` when there is none (for the token the call was given).
    private func callThenRead(_ call: SessionCall) async throws(SessionStoreError) -> (outcome: SessionCall.Outcome, session: Session?) {
        guard let id = call.session else { throw .corrupt("\(call.function) acts on no session") }
        let key = RedisArgument(keys.session(id))
        let (result, fields) = try await withSessionStoreErrors {
            try await redis.fcall(call.function, keys: call.keys(keys), arguments: call.arguments, then: ["HGETALL", key], options: SessionCall.options)
        }
        let outcome = try call.decode(result)
        guard outcome == .done else { return (outcome, nil) }
        return (outcome, try Session(id: id, fields: fields))
    }

    /// A plain command (the reads, the index upkeep, the readiness probe): all idempotent.
    private func send(_ command: [RedisArgument], options: RedisCommandOptions = .idempotent) async throws(SessionStoreError) -> RESPValue {
        try await withSessionStoreErrors { try await redis.send(command, options: options) }
    }

    /// Runs Redis work, mapping every failure to ``SessionStoreError``.
    private func withSessionStoreErrors<T>(_ body: () async throws -> T) async throws(SessionStoreError) -> T {
        do {
            return try await body()
        } catch let error as SessionStoreError {
            throw error
        } catch let error as RedisClientError where error.code == .durabilityTimeout {
            throw .notDurable(error)
        } catch let error as RedisClientError where error.code == .serverError && !error.isTemporaryRefusal {
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
