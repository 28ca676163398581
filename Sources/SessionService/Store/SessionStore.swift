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
///
/// Sessions are written in the fleet's active layout (``SessionLayout``, ``FleetLayout``) and found
/// in either: a session not in the active layout is looked for in the other one, so sessions written
/// by any instance of a mixed fleet are served by every other, and a delete ends a session in both.
/// Once layout 2 is active, a layout-1 session moves into it when it is next used (``migrate(_:copy:)``).
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
        /// How long lifecycle events are kept; zero: no events (see ``SessionEvents``).
        var eventRetention: Duration = .zero
    }

    let redis: RedisClient
    let settings: Settings
    let logger: Logger
    let clock: RedisClock
    /// The layout new sessions are written in, as the fleet last agreed.
    let layout: ActiveLayout
    /// Lifecycle events, when they are on: told of every event a call recorded.
    let events: SessionEvents?
    /// `sessiond_token_reuse_total{action}`.
    private let reuses: Counter
    private var keys: SessionKeys { settings.keys }

    init(
        redis: RedisClient, settings: Settings, layout: ActiveLayout, events: SessionEvents? = nil, logger: Logger,
        metricsFactory: any MetricsFactory
    ) {
        self.redis = redis
        self.layout = layout
        self.events = events
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
        guard let session = try await callThenRead(creation, in: layout.writing).session else {
            throw .corrupt("\(creation.function) made no session")
        }
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
        // The calls below act where the session is now (it was just moved there if it had to be).
        switch session.recognise(token) {
        case .current: break
        case .previous: session = try await self.touch(token, slide: .never)
        case .none: throw .notFound
        }
        guard touch || maxAuthAge != nil else { return session }
        if let maxAuthAge, try await withSessionStoreErrors({ try await clock.hasPassed(session.authenticatedAt + maxAuthAge + 1) }) {
            throw .reauthenticationRequired(authenticatedAt: session.authenticatedAt)
        }
        guard touch, try await withSessionStoreErrors({ try await clock.now() }) - session.lastSeenAt >= interval.milliseconds else { return session }
        return try await self.touch(token, slide: .after(interval))
    }

    /// The session with this id, for an administrator (no token, never slides): one plain
    /// `HGETALL` in the active layout, and another in the other layout when it is not there. A
    /// layout-1 session found once layout 2 is active is moved into it.
    func read(_ id: SessionID) async throws(SessionStoreError) -> Session {
        for place in layout.searchOrder {
            let reply = try await send(["HGETALL", RedisArgument(keys.session(id, in: place))])
            guard let fields = reply.array, !fields.isEmpty else { continue }
            let session = try Session(id: id, fields: reply)
            // In layout 3 a key outlives its session until the sweeper ends it (``SessionEvents``).
            if place == .swept, try await withSessionStoreErrors({ try await clock.hasPassed(session.expiresAt) }) { continue }
            if place < layout.writing { await migrate(id, copy: reply) }
            return session
        }
        throw .notFound
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
        // With an interval of 0 every write slides: no estimate, Redis' clock in any case. Otherwise
        // the latest Redis' clock can be, so that the function asks its clock whenever a slide or the
        // deadline may be due by it.
        let estimate = interval == .zero ? nil : try await withSessionStoreErrors { try await clock.range().latest }
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
        _ = try await delete(token.id, holder: holder(of: token), reason: .logout)
    }

    /// Ends a session by id, for an administrator (idempotent), or (`reason` `.evicted`) past the
    /// per-user cap. Returns whether it existed.
    @discardableResult
    func delete(_ id: SessionID, reason: RevocationReason = .admin) async throws(SessionStoreError) -> Bool {
        try await delete(id, holder: nil, reason: reason)
    }

    private func delete(_ id: SessionID, holder: SessionCall.Holder?, reason: RevocationReason) async throws(SessionStoreError) -> Bool {
        switch try await endEverywhere(.delete(id, WriteID(), holder, tombstoneRetention: settings.tombstoneRetention, reason: reason)) {
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

    /// A delete in every layout, the active one first, so that no copy of the session outlives it
    /// (one being moved between layouts, or one an instance that still wrote the other layout made):
    /// the first outcome that found the session.
    private func endEverywhere(_ deletion: SessionCall) async throws(SessionStoreError) -> SessionCall.Outcome {
        var outcome = SessionCall.Outcome.noSession
        for place in layout.searchOrder {
            let found = try await call(deletion, in: place)
            if outcome == .noSession { outcome = found }
        }
        return outcome
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
    /// The call is made in the active layout, and in the other one when the session is not there;
    /// a layout-1 session it changed once layout 2 is active is then moved into it.
    private func tokenCall(_ call: SessionCall, token: SessionToken) async throws(SessionStoreError) -> Session {
        for place in layout.searchOrder {
            let (outcome, session, fields) = try await callThenRead(call, in: place)
            if case .tokenReused(let revoked, let user) = outcome { try await reused(token.id, revoked: revoked, user: user) }
            guard outcome != .noSession else { continue }
            guard let session else { throw .notFound }
            if place < layout.writing { await migrate(token.id, copy: fields) }
            return session
        }
        throw .notFound
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
    /// - Parameter reason: `.user` for an administrator, `.others` for the holder of `kept`.
    func revokeAll(ofUser user: String, except kept: SessionID? = nil, reason: RevocationReason = .user) async throws(SessionStoreError) -> Int {
        let indexKey = keys.userIndex(user)
        let ids = try await indexedIDs(indexKey).filter { $0 != kept?.hex }
        let writeID = WriteID()
        let revoked = try await withSessionStoreErrors {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for id in ids {
                    group.addTask {
                        guard let sessionID = SessionID(parsing: id) else { return 0 }
                        let outcome = try await endEverywhere(
                            .delete(sessionID, writeID, nil, tombstoneRetention: settings.tombstoneRetention, reason: reason)
                        )
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
            try await delete(session.id, reason: .evicted)
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

    // MARK: - Moving sessions between layouts

    /// Moves a layout-1 session into layout 2, given a copy of its hash (an `HGETALL` reply). The
    /// two keys are in different hash slots, so this is a copy (`import`, which never overwrites
    /// another copy) and then the removal of the old key if it is still what was copied
    /// (`drop_moved`): a write in between is copied again, a delete in between removes the copy,
    /// and instances moving the same session at once agree. Best effort: on a Redis error the
    /// session stays where it is, still found there, and the next use tries again.
    private func migrate(_ id: SessionID, copy fields: RESPValue) async {
        var copy = fields
        var replaces: [UInt8] = []
        for _ in 0..<3 {
            guard let fingerprint = Self.fingerprint(copy) else { return }
            do {
                // In layout 3 with events the outbox is passed only so that the copy gets the
                // backstop expiry; moving a session records no event.
                let target = layout.writing
                let events = recordsEvents(in: target)
                var importKeys = [RedisArgument(keys.session(id, in: target)), RedisArgument(keys.deadlines(id, in: target)!)]
                if events != nil { importKeys.append(RedisArgument(keys.outbox(bucket: SessionKeys.bucket(of: id)))) }
                let imported = try await redis.fcall(
                    SessionFunctions.functionPrefix + "import",
                    keys: importKeys,
                    arguments: [RedisArgument(bytes: replaces)] + (copy.array ?? []).compactMap { $0.bytes.map { RedisArgument(bytes: $0) } }
                        + [RedisArgument(bytes: id.bytes), events.map { RedisArgument($0.milliseconds) } ?? ""],
                    options: SessionCall.options
                )
                let dropped = try await redis.fcall(
                    SessionFunctions.functionPrefix + "drop_moved",
                    keys: [RedisArgument(keys.session(id, in: .perSessionSlot)), RedisArgument(keys.tombstone(id, in: .perSessionSlot))],
                    arguments: [RedisArgument(bytes: fingerprint)], options: SessionCall.options
                )
                switch dropped.string {
                case "moved":
                    return
                case "deleted":
                    // The session ended in layout 1 (no event there); its copy goes without one too.
                    let removal = SessionCall.delete(id, WriteID(), nil, tombstoneRetention: settings.tombstoneRetention, reason: .admin)
                    _ = try await redis.fcall(
                        removal.function, keys: removal.keys(keys, layout: target), arguments: removal.arguments(in: target),
                        options: SessionCall.options
                    )
                    return
                default:
                    // Written in layout 1 since the copy: copy again over this copy, never over another.
                    guard imported == .integer(1) else { break }
                    replaces = fingerprint
                    copy = try await redis.send(["HGETALL", RedisArgument(keys.session(id, in: .perSessionSlot))], options: .idempotent)
                    continue
                }
            } catch {
                logger.warning("could not move a session into storage layout 2; it stays where it is", metadata: ["session": "\(id)", "error": "\(error)"])
                return
            }
            break
        }
        logger.error(
            "a session was written in both storage layouts at once; layout 2's copy is kept (an instance still writing layout 1 after the fleet moved on)",
            metadata: ["session": "\(id)"]
        )
    }

    /// What `import` and `drop_moved` compare: the meta, digests and write ids of a session's
    /// `HGETALL` reply, which every change alters; `nil` when the reply holds no session.
    static func fingerprint(_ fields: RESPValue) -> [UInt8]? {
        guard let values = fields.array, !values.isEmpty else { return nil }
        var meta: [UInt8]?
        var digests: [UInt8] = []
        var writes: [UInt8] = []
        for index in stride(from: 0, to: values.count - 1, by: 2) {
            switch values[index].bytes {
            case [UInt8(ascii: "m")]: meta = values[index + 1].bytes
            case [UInt8(ascii: "k")]: digests = values[index + 1].bytes ?? []
            case [UInt8(ascii: "w")]: writes = values[index + 1].bytes ?? []
            default: continue
            }
        }
        guard let meta else { return nil }
        return meta + digests + writes
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
    /// (`place`: the layout of the session's keys; the user index is the same in both.)
    private func call(_ call: SessionCall, in place: SessionLayout = .newest) async throws(SessionStoreError) -> SessionCall.Outcome {
        let events = recordsEvents(in: place)
        let reply = try await withSessionStoreErrors {
            try await redis.fcall(
                call.function, keys: call.keys(keys, layout: place, events: events), arguments: call.arguments(in: place, events: events),
                options: SessionCall.options
            )
        }
        let outcome = try call.decode(reply)
        if events != nil { self.events?.recorded(by: call, outcome: outcome) }
        return outcome
    }

    /// The event log's retention when a call in `place` records events: in layout 3 with events on.
    private func recordsEvents(in place: SessionLayout) -> Duration? {
        events != nil && place == .swept ? settings.eventRetention : nil
    }

    /// Calls a function on one session in `place` and reads the session it leaves, in one `MULTI`
    /// block; the session is `nil` when there is none (for the token the call was given). `fields`
    /// is the read's reply.
    private func callThenRead(
        _ call: SessionCall, in place: SessionLayout
    ) async throws(SessionStoreError) -> (outcome: SessionCall.Outcome, session: Session?, fields: RESPValue) {
        guard let id = call.session else { throw .corrupt("\(call.function) acts on no session") }
        let key = RedisArgument(keys.session(id, in: place))
        let events = recordsEvents(in: place)
        let (result, fields) = try await withSessionStoreErrors {
            try await redis.fcall(
                call.function, keys: call.keys(keys, layout: place, events: events), arguments: call.arguments(in: place, events: events),
                then: ["HGETALL", key], options: SessionCall.options
            )
        }
        let outcome = try call.decode(result)
        if events != nil { self.events?.recorded(by: call, outcome: outcome) }
        guard outcome == .done else { return (outcome, nil, fields) }
        return (outcome, try Session(id: id, fields: fields), fields)
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
