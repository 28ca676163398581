/// One RESP2 reply, copied out of hiredis into a plain Swift value that can cross tasks.
///
/// A top-level error reply is never returned as a value: the client throws it as
/// ``RedisClientError/serverError(_:)``. Errors nested inside an array (for example in a
/// transaction's results) stay in the tree as ``error(_:)``.
public enum RESPValue: Sendable, Hashable {
    /// A status reply such as `+OK`.
    case simpleString(String)
    /// An error reply nested inside an array.
    case error(String)
    /// An integer reply.
    case integer(Int64)
    /// A bulk string: arbitrary bytes, binary-safe.
    case bulkString([UInt8])
    /// The nil bulk string or nil array.
    case null
    /// An array of replies, possibly nested.
    case array([RESPValue])
}

extension RESPValue {
    /// The value as text when it is a bulk or simple string (bytes decoded as UTF-8), else `nil`.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }

    /// The raw bytes of a bulk or simple string, else `nil`.
    public var bytes: [UInt8]? {
        switch self {
        case .simpleString(let text): Array(text.utf8)
        case .bulkString(let bytes): bytes
        default: nil
        }
    }

    /// The integer of an integer reply, else `nil`.
    public var integer: Int64? {
        if case .integer(let value) = self { value } else { nil }
    }

    /// The elements of an array reply, else `nil`.
    public var array: [RESPValue]? {
        if case .array(let values) = self { values } else { nil }
    }

    /// Whether this is the nil reply.
    public var isNull: Bool {
        if case .null = self { true } else { false }
    }
}
