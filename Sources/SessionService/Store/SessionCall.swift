import RedisClient

/// One call of a function of ``SessionFunctions``, with typed arguments: the only encoder of the
/// functions' `KEYS` and `ARGV` and the only decoder of their replies, kept beside the Lua.
/// ``SessionStore`` only sequences calls.
///
/// Every call may be sent again after a failure whose outcome is unknown (the session writes
/// recognise their write id, the touch and the index upkeep change nothing when repeated), and every
/// one of them writes, so in the replicated mode it waits for the replicas: ``options``.
enum SessionCall: Sendable {
    /// What a write does with the attributes it is given.
    enum WriteMode: String, Sendable {
        /// Sets each named attribute; a raw `null` deletes it.
        case patch
        /// Replaces the whole data object.
        case replace
    }

    /// When a call slides the session's idle deadline (by Redis' clock).
    enum Slide: Sendable, Equatable {
        /// Never: a read with the previous token, which only Redis may judge.
        case never
        /// Once this long has passed since the last slide (`.zero`: on every call).
        case after(Duration)
    }

    /// The holder of a token acting on its session: the digest of the secret presented, and what
    /// presenting the previous token after its grace window does.
    struct Holder: Sendable {
        let secretDigest: [UInt8]
        let onReuse: TokenReusePolicy
    }

    /// Makes a session under `id`; a repeat of `writeID` answers as the first did.
    case create(
        SessionID, WriteID, user: String?, idleTimeout: Duration, absoluteTimeout: Duration, secretDigest: [UInt8],
        device: [UInt8]?, data: [Session.Attribute]
    )
    /// Checks `holder`'s token and slides the idle deadline as `slide` says.
    case touch(SessionID, Holder, slide: Slide)
    /// Sets or replaces attributes if `ifMatch` holds; slides when `slide` says, asking Redis' clock
    /// only when `clockEstimate` (the latest it can be by sessiond's estimate, in ms) says a slide or
    /// the deadline may be due (`nil`: ask in any case).
    /// A write that would leave the session over `limits` (and larger than it was) writes nothing.
    case write(
        SessionID, WriteID, Holder, ifMatch: IfMatch?, mode: WriteMode, slide: Slide, clockEstimate: Int64?,
        limits: SessionLimits, attributes: [Session.Attribute]
    )
    /// Gives the session `newSecretDigest`; the holder's token keeps working for `grace`.
    case rotate(SessionID, WriteID, Holder, newSecretDigest: [UInt8], grace: Duration, reauthenticated: Bool)
    /// Ends the session: for its token's holder, or for an administrator (`nil`: no token needed).
    /// Its tombstone remembers `writeID` for `tombstoneRetention`; its event says `reason`.
    case delete(SessionID, WriteID, Holder?, tombstoneRetention: Duration, reason: RevocationReason)
    /// Adds `id` to `user`'s index, which lives `lifetime` from now at least.
    case indexAdd(user: String, SessionID, lifetime: Duration)

    /// What a call answered.
    enum Outcome: Sendable, Equatable {
        /// The call did what it was asked (or a repeat found it done).
        case done
        /// No session for the token or id (never was, ended, or not this token's).
        case noSession
        /// A delete ended the session, which belonged to `user`.
        case deleted(user: String?)
        /// The previous token after its grace window; the session was ended when `revoked`, and
        /// belonged to `user`.
        case tokenReused(revoked: Bool, user: String?)
        /// The user's index holds this many ids now.
        case indexSize(Int64)
    }

    /// Retried after an unknown outcome, and acknowledged only once replicated in the durable mode.
    static var options: RedisCommandOptions { [.idempotent, .durable] }

    /// The function's name in Redis.
    var function: String {
        let name = switch self {
        case .create: "create"
        case .touch: "touch"
        case .write: "write"
        case .rotate: "rotate"
        case .delete: "delete"
        case .indexAdd: "index_add"
        }
        return SessionFunctions.functionPrefix + name
    }

    /// The session the call acts on (`nil` for the index).
    var session: SessionID? {
        switch self {
        case .create(let id, _, _, _, _, _, _, _), .touch(let id, _, _), .write(let id, _, _, _, _, _, _, _, _),
            .rotate(let id, _, _, _, _, _), .delete(let id, _, _, _, _):
            id
        case .indexAdd:
            nil
        }
    }

    /// The call's `KEYS` in `layout`: all in one hash slot. From layout 2 a session call's keys
    /// end with its bucket's deadline index, and when it records events (`events`: the event
    /// log's retention; `nil` for none) with the outbox its event goes to.
    func keys(_ keys: SessionKeys, layout: SessionLayout, events: Duration? = nil) -> [RedisArgument] {
        guard let id = session else {
            guard case .indexAdd(let user, _, _) = self else { return [] }
            return [RedisArgument(keys.userIndex(user))]
        }
        var names: [RedisArgument] = []
        names.reserveCapacity(4)  // the most a call names: one allocation, not one per growth
        names.append(RedisArgument(keys.session(id, in: layout)))
        if case .delete = self { names.append(RedisArgument(keys.tombstone(id, in: layout))) }
        if let deadlines = keys.deadlines(id, in: layout) { names.append(RedisArgument(deadlines)) }
        if events != nil { names.append(RedisArgument(keys.outbox(bucket: SessionKeys.bucket(of: id)))) }
        return names
    }

    /// The call's full `ARGV` in `layout`: a session call's ``arguments``, then the session's member
    /// in its bucket's deadline index (its raw id from layout 2, empty in layout 1) and the event
    /// log's retention in ms (empty when it records no event).
    func arguments(in layout: SessionLayout, events: Duration? = nil) -> [RedisArgument] {
        guard let id = session else { return arguments }
        var all = arguments
        all.reserveCapacity(all.count + 2)
        all.append(layout.isBucketed ? RedisArgument(bytes: id.bytes) : "")
        all.append(events.map { RedisArgument($0.milliseconds) } ?? "")
        return all
    }

    /// The call's own arguments, in the order the Lua reads them (before the place arguments).
    var arguments: [RedisArgument] {
        switch self {
        case .create(_, let writeID, let user, let idle, let absolute, let digest, let device, let data):
            return [
                writeID.argument, RedisArgument(user ?? ""), RedisArgument(idle.milliseconds), RedisArgument(absolute.milliseconds),
                RedisArgument(bytes: digest), RedisArgument(bytes: device ?? []),
            ] + data.redisArguments
        case .touch(_, let holder, let slide):
            return [slide.argument, RedisArgument(bytes: holder.secretDigest), holder.onReuse.argument]
        case .write(_, let writeID, let holder, let ifMatch, let mode, let slide, let estimate, let limits, let attributes):
            return [
                writeID.argument, RedisArgument(bytes: holder.secretDigest), RedisArgument(ifMatch?.functionArgument ?? ""),
                RedisArgument(mode.rawValue), slide.argument, estimate.map { RedisArgument($0) } ?? "",
                holder.onReuse.argument, RedisArgument(limits.maxDataBytes), RedisArgument(limits.maxAttributes),
            ] + attributes.redisArguments
        case .rotate(_, let writeID, let holder, let newDigest, let grace, let reauthenticated):
            return [
                writeID.argument, RedisArgument(bytes: holder.secretDigest), RedisArgument(bytes: newDigest),
                RedisArgument(grace.milliseconds), reauthenticated ? "1" : "0", holder.onReuse.argument,
            ]
        case .delete(_, let writeID, let holder, let retention, let reason):
            return [
                writeID.argument, RedisArgument(retention.milliseconds), RedisArgument(bytes: holder?.secretDigest ?? []),
                (holder?.onReuse ?? .revoke).argument, RedisArgument(reason.rawValue),
            ]
        case .indexAdd(_, let id, let lifetime):
            return [RedisArgument(id.hex), "", RedisArgument(lifetime.milliseconds)]
        }
    }

    /// What the function's reply means.
    /// - Throws: ``SessionStoreError/versionMismatch(current:)``, ``SessionStoreError/tokenSuperseded``,
    ///   ``SessionStoreError/sessionTooLarge(_:)``,
    ///   or ``SessionStoreError/corrupt(_:)`` for a reply no function of this version gives.
    func decode(_ reply: RESPValue) throws(SessionStoreError) -> Outcome {
        switch (self, reply) {
        case (_, .null):
            return .noSession
        case (.indexAdd, .integer(let size)):
            return .indexSize(size)
        case (.delete, .array(let parts)) where parts.count == 2 && parts[0] == .integer(1):
            return .deleted(user: parts[1].nonEmptyString)
        case (.create, .integer(1)), (.touch, .integer(1)), (.write, .integer(1)), (.rotate, .integer(1)):
            return .done
        case (_, .array(let parts)):
            switch (parts.first?.string, parts.count) {
            case ("reused", 3):
                return .tokenReused(revoked: parts[1] == .integer(1), user: parts[2].nonEmptyString)
            case ("superseded", 1):
                throw .tokenSuperseded
            case ("version_mismatch", 2):
                guard let version = parts[1].integer else { break }
                throw .versionMismatch(current: version)
            case ("too_large", 3):
                guard case .write(_, _, _, _, _, _, _, let limits, _) = self, let bytes = parts[1].integer, let count = parts[2].integer
                else { break }
                throw limits.tooLarge(bytes: bytes, attributes: count)
            default:
                break
            }
        default:
            break
        }
        throw .corrupt("\(function) answered \(reply)")
    }
}

extension SessionCall.Slide {
    /// `''` (never) or the minimum milliseconds since the last slide.
    fileprivate var argument: RedisArgument {
        switch self {
        case .never: ""
        case .after(let interval): RedisArgument(interval.milliseconds)
        }
    }
}

/// Why a session was revoked: the `reason` of its `session.revoked` event.
enum RevocationReason: String, Sendable {
    /// `DELETE /v1/session`.
    case logout
    /// `DELETE /v1/sessions/{id}`.
    case admin
    /// `DELETE /v1/users/{user}/sessions`.
    case user
    /// `DELETE /v1/session/others`.
    case others
    /// A rotated-away token presented after its grace window, under the `revoke` policy.
    case tokenReuse = "token_reuse"
    /// A create past the per-user cap revoked the user's oldest session.
    case evicted
}

extension TokenReusePolicy {
    fileprivate var argument: RedisArgument { RedisArgument(rawValue) }
}

extension Duration {
    /// Whole milliseconds (rounded down), as the functions take times.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}

extension RESPValue {
    /// The text of a non-empty string reply; `nil` for an empty one (the functions' "none").
    fileprivate var nonEmptyString: String? {
        guard let text = string, !text.isEmpty else { return nil }
        return text
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
