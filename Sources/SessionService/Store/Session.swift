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
    let data: [Attribute]
    let version: Int64
    let createdAt: Int64
    /// When the idle deadline last slid (creation, a write, or a read after the touch interval).
    let lastSeenAt: Int64
    let idleTimeout: Int64
    let absoluteExpiresAt: Int64

    /// The moment the session ends unless it is used again: min(last slide + idle, absolute).
    var expiresAt: Int64 { min(lastSeenAt + idleTimeout, absoluteExpiresAt) }
}

extension Session {
    /// Builds a session from the flat field/value list the functions return (`HGETALL` shape).
    /// - Throws: ``SessionStoreError/corrupt(_:)`` when a meta field is missing or malformed.
    init(id: SessionID, fields reply: RESPValue) throws(SessionStoreError) {
        guard let values = reply.array, values.count % 2 == 0 else {
            throw .corrupt("session \(id) came back in an unexpected shape")
        }
        var user: String?
        var data: [Attribute] = []
        var meta: [UInt8: Int64] = [:]
        var index = 0
        while index < values.count {
            guard let name = values[index].bytes, let value = values[index + 1].bytes, let first = name.first else {
                throw .corrupt("session \(id) has a malformed field")
            }
            if first == UInt8(ascii: ".") {
                data.append(Attribute(name: String(decoding: name.dropFirst(), as: UTF8.self), raw: value))
            } else if name == [UInt8(ascii: "u")] {
                user = String(decoding: value, as: UTF8.self)
            } else if name.count == 1, first != UInt8(ascii: "w") {  // `w`: write ids, binary
                meta[first] = Int64(String(decoding: value, as: UTF8.self))
            }
            index += 2
        }
        guard let version = meta[UInt8(ascii: "v")], let created = meta[UInt8(ascii: "c")],
            let last = meta[UInt8(ascii: "l")], let idle = meta[UInt8(ascii: "i")], let absolute = meta[UInt8(ascii: "a")]
        else {
            throw .corrupt("session \(id) lacks its version or times")
        }
        self.init(
            id: id, user: user, data: data, version: version, createdAt: created, lastSeenAt: last,
            idleTimeout: idle, absoluteExpiresAt: absolute
        )
    }
}
