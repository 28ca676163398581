/// One argument of a Redis command: bytes sent as a RESP bulk string, so any byte
/// (including `\0` and `\r\n`) survives.
public struct RedisArgument: Sendable, Hashable {
    /// The bytes sent on the wire.
    public var bytes: [UInt8]

    /// An argument holding exactly these bytes.
    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// An argument holding the UTF-8 encoding of `text`.
    public init(_ text: some StringProtocol) {
        self.bytes = Array(text.utf8)
    }

    /// An argument holding the decimal form of `number`, as Redis expects integers.
    public init(_ number: some BinaryInteger) {
        self.bytes = Array(String(number).utf8)
    }
}

extension RedisArgument: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) {
        self.init(value)
    }
}

extension RedisArgument: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) {
        self.init(value)
    }
}
