import RedisClient

/// One session as stored in Redis, with times in milliseconds since the Unix epoch (Redis' clock).
struct Session: Sendable {
    /// One top-level data attribute: its name and its value's exact JSON bytes.
    struct Attribute: Sendable {
        let name: String
        let raw: [UInt8]
    }

    let id: SessionID
    let user: String?
    /// The device it was created on, as the JSON object the API shows (`nil`: none given).
    let device: [UInt8]?
    let data: [Attribute]
    let version: Int64
    let createdAt: Int64
    /// When the user last proved who they are: the creation, or a rotation marked `reauthenticated`.
    let authenticatedAt: Int64
    /// When the idle deadline last slid (creation, a write, or a read after the touch interval).
    let lastSeenAt: Int64
    let idleTimeout: Int64
    let absoluteExpiresAt: Int64
    /// SHA-256 of the current token's secret.
    let secretDigest: [UInt8]
    /// SHA-256 of the previous token's secret, after a rotation.
    let previousSecretDigest: [UInt8]?

    /// The moment the session ends unless it is used again: min(last slide + idle, absolute).
    var expiresAt: Int64 { min(lastSeenAt + idleTimeout, absoluteExpiresAt) }

    /// What `token` is to this session: its current token, its previous one (whose grace window
    /// only Redis' clock may judge: see ``SessionFunctions``), or none of its tokens.
    func recognise(_ token: SessionToken) -> TokenMatch {
        if SecretComparison.digestsAreEqual(token.secretDigest, secretDigest) { return .current }
        if let previousSecretDigest, SecretComparison.digestsAreEqual(token.secretDigest, previousSecretDigest) { return .previous }
        return .none
    }

    enum TokenMatch {
        case current
        case previous
        case none
    }
}

extension Session {
    /// Builds a session from the flat field/value list the functions return (`HGETALL` shape).
    /// - Throws: ``SessionStoreError/corrupt(_:)`` when a meta field is missing or malformed.
    init(id: SessionID, fields reply: RESPValue) throws(SessionStoreError) {
        guard let values = reply.array, values.count % 2 == 0 else {
            throw .corrupt("session \(id) came back in an unexpected shape")
        }
        var user: String?
        var device: [UInt8]?
        var data: [Attribute] = []
        var times: [UInt8: Int64] = [:]
        var secret: [UInt8]?
        var previousSecret: [UInt8]?
        var index = 0
        while index < values.count {
            guard let name = values[index].bytes, let value = values[index + 1].bytes, let first = name.first else {
                throw .corrupt("session \(id) has a malformed field")
            }
            index += 2
            if first == UInt8(ascii: ".") {
                data.append(Attribute(name: String(decoding: name.dropFirst(), as: UTF8.self), raw: value))
                continue
            }
            guard name.count == 1 else { continue }
            switch first {
            case UInt8(ascii: "u"): user = String(decoding: value, as: UTF8.self)
            case UInt8(ascii: "d"): device = value
            case UInt8(ascii: "s"): secret = value
            case UInt8(ascii: "p"): previousSecret = value
            case UInt8(ascii: "w"), UInt8(ascii: "g"): continue  // write ids (binary); the grace end is Redis' to judge
            default: times[first] = Int64(String(decoding: value, as: UTF8.self))
            }
        }
        guard let version = times[UInt8(ascii: "v")], let created = times[UInt8(ascii: "c")],
            let authenticated = times[UInt8(ascii: "t")], let last = times[UInt8(ascii: "l")],
            let idle = times[UInt8(ascii: "i")], let absolute = times[UInt8(ascii: "a")], let secret
        else {
            throw .corrupt("session \(id) lacks its version, times or secret digest")
        }
        self.init(
            id: id, user: user, device: device, data: data, version: version, createdAt: created,
            authenticatedAt: authenticated, lastSeenAt: last, idleTimeout: idle, absoluteExpiresAt: absolute,
            secretDigest: secret, previousSecretDigest: previousSecret
        )
    }
}
