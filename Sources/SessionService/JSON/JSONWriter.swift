import NIOCore

/// Builds JSON output straight into the response's ByteBuffer: member names and strings are
/// escaped, stored attribute values are copied verbatim (they were validated as JSON when they came
/// in). Strings with nothing to escape (ids, timestamps, most names) are copied in one go.
struct JSONWriter {
    private(set) var buffer: ByteBuffer

    init(capacity: Int = 256) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    mutating func raw(_ text: StaticString) {
        buffer.writeStaticString(text)
    }

    mutating func raw(_ value: [UInt8]) {
        buffer.writeBytes(value)
    }

    mutating func raw(_ value: ByteBuffer) {
        buffer.writeImmutableBuffer(value)
    }

    mutating func string(_ text: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            buffer.writeString(text)
        } else {
            for byte in text.utf8 { escape(byte) }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private mutating func escape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): raw("\\\"")
        case UInt8(ascii: "\\"): raw("\\\\")
        case 0x0A: raw("\\n")
        case 0x0D: raw("\\r")
        case 0x09: raw("\\t")
        case 0x00..<0x20:
            raw("\\u00")
            buffer.writeInteger(Self.hexDigits[Int(byte >> 4)])
            buffer.writeInteger(Self.hexDigits[Int(byte & 0x0F)])
        default: buffer.writeInteger(byte)
        }
    }

    mutating func integer(_ value: Int64) {
        if value < 0 {
            buffer.writeInteger(UInt8(ascii: "-"))
        }
        digits(value.magnitude, width: 1)
    }

    /// The decimal digits of `value`, left-padded with zeros to at least `width`.
    mutating func digits(_ value: UInt64, width: Int) {
        precondition(width <= 20, "a UInt64 has at most 20 digits")
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of stack: room for any UInt64
        withUnsafeMutableBytes(of: &scratch) { space in
            var remaining = value
            var index = space.count
            repeat {
                index -= 1
                space[index] = UInt8(ascii: "0") + UInt8(remaining % 10)
                remaining /= 10
            } while remaining > 0 || space.count - index < width
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: space[index...]))
        }
    }

    /// A quoted RFC 3339 UTC timestamp with milliseconds, from Unix milliseconds.
    mutating func timestamp(milliseconds: Int64) {
        buffer.writeInteger(UInt8(ascii: "\""))
        Timestamp.write(milliseconds: milliseconds, to: &self)
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// `"name":` with the separating comma when it is not the first member.
    mutating func key(_ name: String, first: Bool = false) {
        if !first { buffer.writeInteger(UInt8(ascii: ",")) }
        string(name)
        buffer.writeInteger(UInt8(ascii: ":"))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}
