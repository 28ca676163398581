/// One argument of a Redis command: bytes sent as a RESP bulk string, so any byte
/// (including `\0` and `\r\n`) survives.
///
/// Up to 15 bytes are held inline, as Swift's own small strings are: most arguments of a session
/// command (its name, numbers, short keys, an 8-byte write id, options) then cost no allocation of
/// their own. Longer ones are an array.
public struct RedisArgument: Sendable {
    private enum Storage: Sendable {
        /// `count` bytes at the start of `bytes` (a 15-byte tuple, laid out contiguously).
        case inline(count: UInt8, bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8))
        case array([UInt8])
    }

    private static let inlineCapacity = 15
    private var storage: Storage

    /// An argument holding exactly these bytes.
    public init(bytes: some Collection<UInt8>) {
        // Through a pointer when the bytes are contiguous (arrays, strings): generic code that
        // walks them one by one may box its iterator, an allocation per argument.
        if let argument = bytes.withContiguousStorageIfAvailable({ RedisArgument(copying: UnsafeRawBufferPointer($0)) }) {
            self = argument
        } else {
            self.init(copying: Array(bytes))
        }
    }

    private init(copying bytes: UnsafeRawBufferPointer) {
        if bytes.count <= Self.inlineCapacity {
            var inline: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            if let base = bytes.baseAddress {
                withUnsafeMutableBytes(of: &inline) { $0.baseAddress!.copyMemory(from: base, byteCount: bytes.count) }
            }
            storage = .inline(count: UInt8(bytes.count), bytes: inline)
        } else {
            storage = .array(Array(bytes))
        }
    }

    private init(copying bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { RedisArgument(copying: $0) }
    }

    /// An argument holding the UTF-8 encoding of `text`.
    public init(_ text: some StringProtocol) {
        self.init(bytes: text.utf8)
    }

    /// An argument holding the decimal form of `number`, as Redis expects integers.
    public init(_ number: some BinaryInteger) {
        self.init(bytes: String(number).utf8)
    }

    /// The number of bytes.
    public var count: Int {
        switch storage {
        case .inline(let count, _): Int(count)
        case .array(let bytes): bytes.count
        }
    }

    /// Calls `body` with the bytes, valid only during the call.
    public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        switch storage {
        case .inline(let count, var bytes):
            return try Swift.withUnsafeBytes(of: &bytes) { try body(UnsafeRawBufferPointer(rebasing: $0[..<Int(count)])) }
        case .array(let bytes):
            return try bytes.withUnsafeBytes(body)
        }
    }

    /// The bytes as an array (a copy when they are held inline).
    public var bytes: [UInt8] {
        switch storage {
        case .inline: withUnsafeBytes { Array($0) }
        case .array(let bytes): bytes
        }
    }
}

extension RedisArgument: Hashable {
    public static func == (lhs: RedisArgument, rhs: RedisArgument) -> Bool {
        lhs.withUnsafeBytes { left in rhs.withUnsafeBytes { right in left.elementsEqual(right) } }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes { hasher.combine(bytes: $0) }
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
