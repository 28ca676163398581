import NIOCore
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
    /// The digest of the current token's secret.
    let secretDigest: [UInt8]
    /// The digest of the previous token's secret, after a rotation.
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

/// The packed meta fields of a session hash (see ``SessionFunctions``): `m`, six 6-byte
/// little-endian integers; `k`, the current secret's digest, then after a rotation the previous
/// one's and the end of its grace window.
enum SessionMeta {
    static let integerByteCount = 6
    static let timesByteCount = 6 * integerByteCount
    static let digestByteCount = SessionToken.digestByteCount

    /// The integer at `index` (0 version, 1 created, 2 authenticated, 3 last slide, 4 idle,
    /// 5 absolute deadline).
    static func integer(_ index: Int, in meta: some RandomAccessCollection<UInt8>) -> Int64 {
        var value: UInt64 = 0
        for offset in (0..<integerByteCount).reversed() {
            value = value << 8 | UInt64(meta[meta.index(meta.startIndex, offsetBy: index * integerByteCount + offset)])
        }
        // Sign-extend the 48 bits.
        return Int64(bitPattern: value << 16) >> 16
    }
}

extension Session {
    /// Builds a session from the flat field/value list the functions return (`HGETALL` shape).
    /// - Throws: ``SessionStoreError/corrupt(_:)`` when the meta field is missing or malformed.
    init(id: SessionID, fields reply: RESPValue) throws(SessionStoreError) {
        guard let values = reply.array, values.count % 2 == 0 else {
            throw .corrupt("session \(id) came back in an unexpected shape")
        }
        var user: String?
        var device: [UInt8]?
        var data: [Attribute] = []
        data.reserveCapacity(values.count / 2)  // at most one attribute per field: one allocation, not one per growth
        // Read in place from the reply's buffer; only what the session keeps is copied.
        var meta: ByteBufferView?
        var digests: ByteBufferView?
        var index = 0
        while index < values.count {
            guard let name = values[index].bulkBytes, let value = values[index + 1].bulkBytes, let first = name.first else {
                throw .corrupt("session \(id) has a malformed field")
            }
            index += 2
            if first == UInt8(ascii: ".") {
                data.append(Attribute(name: String(decoding: name.dropFirst(), as: UTF8.self), raw: Array(value)))
            } else if name.count == 1 {
                switch first {
                case UInt8(ascii: "m"): meta = value
                case UInt8(ascii: "k"): digests = value
                case UInt8(ascii: "u"): user = String(decoding: value, as: UTF8.self)
                case UInt8(ascii: "d"): device = Array(value)
                default: continue
                }
            }
        }
        let digestBytes = SessionMeta.digestByteCount
        guard let meta, meta.count == SessionMeta.timesByteCount, let digests,
            digests.count == digestBytes || digests.count == 2 * digestBytes + SessionMeta.integerByteCount
        else {
            throw .corrupt("session \(id) lacks its meta fields")
        }
        // Read through a pointer: the view's own subscript costs an allocation per byte here.
        let times = meta.withContiguousStorageIfAvailable { meta in (0..<6).map { SessionMeta.integer($0, in: meta) } } ?? []
        guard times.count == 6 else { throw .corrupt("session \(id) has unreadable meta fields") }
        self.init(
            id: id, user: user, device: device, data: data, version: times[0], createdAt: times[1], authenticatedAt: times[2],
            lastSeenAt: times[3], idleTimeout: times[4], absoluteExpiresAt: times[5],
            secretDigest: Array(digests.prefix(digestBytes)),
            previousSecretDigest: digests.count > digestBytes ? Array(digests.dropFirst(digestBytes).prefix(digestBytes)) : nil
        )
    }
}
