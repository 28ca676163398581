import NIOCore

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
    /// A bulk string: arbitrary bytes, binary-safe. The bulk strings of one reply are slices of
    /// one buffer (``RESPReplyReader``), so that a reply of many strings is one allocation for them all.
    case bulkString(ByteBuffer)
    /// The nil bulk string or nil array.
    case null
    /// An array of replies, possibly nested.
    case array([RESPValue])
}

extension RESPValue {
    /// A bulk string holding these bytes.
    public static func bulkString(_ bytes: [UInt8]) -> RESPValue {
        .bulkString(ByteBuffer(bytes: bytes))
    }

    /// The value as text when it is a bulk or simple string (bytes decoded as UTF-8), else `nil`.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let buffer): String(decoding: buffer.readableBytesView, as: UTF8.self)
        default: nil
        }
    }

    /// The raw bytes of a bulk or simple string, else `nil`: a copy (``bulkBytes`` reads them in place).
    public var bytes: [UInt8]? {
        switch self {
        case .simpleString(let text): Array(text.utf8)
        case .bulkString(let buffer): Array(buffer.readableBytesView)
        default: nil
        }
    }

    /// The bytes of a bulk string, in place, else `nil`.
    public var bulkBytes: ByteBufferView? {
        if case .bulkString(let buffer) = self { buffer.readableBytesView } else { nil }
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
