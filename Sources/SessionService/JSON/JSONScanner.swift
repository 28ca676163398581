/// A strict RFC 8259 JSON validator that hands back the members of a top-level object as raw bytes.
///
/// sessiond stores attribute values exactly as the caller sent them, so values are never decoded
/// into numbers or re-encoded: `12345678901234567890` and `1.10` come back byte for byte. Only the
/// member names are decoded (they become Redis hash fields). Nesting deeper than ``maximumDepth``
/// is refused before it can exhaust the stack.
struct JSONScanner {
    /// The deepest nesting of objects and arrays accepted; the top-level object is level 1.
    static let maximumDepth = 64

    /// One member of the top-level object.
    struct Member: Sendable {
        /// The decoded member name.
        let name: String
        /// The value's exact bytes, without surrounding whitespace.
        let raw: [UInt8]

        var isNull: Bool { raw == JSONScanner.nullLiteral }
        var isObject: Bool { raw.first == UInt8(ascii: "{") }
    }

    /// Why a document was refused.
    enum Failure: Error, Equatable {
        /// Not JSON (or not UTF-8); the text says where.
        case invalid(String)
        /// Valid JSON, nested deeper than ``maximumDepth``.
        case tooDeep
        /// Valid JSON whose top level is not an object.
        case notAnObject
        /// The same member name twice in the top-level object.
        case duplicateMember(String)
    }

    static let nullLiteral = Array("null".utf8)

    private let bytes: [UInt8]
    private var index = 0

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Validates `bytes` as one JSON object and returns its members in order.
    static func members(of bytes: [UInt8]) throws(Failure) -> [Member] {
        var scanner = JSONScanner(bytes: bytes)
        scanner.skipWhitespace()
        guard scanner.peek() == UInt8(ascii: "{") else {
            // Distinguish "not JSON" from "JSON but not an object" for a clearer error.
            var validator = JSONScanner(bytes: bytes)
            try validator.validateDocument()
            throw .notAnObject
        }
        let members = try scanner.scanTopLevelObject()
        scanner.skipWhitespace()
        guard scanner.index == bytes.count else { throw scanner.invalid("unexpected data after the JSON value") }
        return members
    }

    /// Validates `bytes` as one JSON value (any type); returns the value's bytes without whitespace.
    static func validatedValue(_ bytes: [UInt8]) throws(Failure) -> [UInt8] {
        var scanner = JSONScanner(bytes: bytes)
        scanner.skipWhitespace()
        let start = scanner.index
        try scanner.scanValue(depth: 1)
        let end = scanner.index
        scanner.skipWhitespace()
        guard scanner.index == bytes.count else { throw scanner.invalid("unexpected data after the JSON value") }
        return Array(bytes[start..<end])
    }

    /// The text of `raw` when it is exactly one JSON string (escapes decoded), else `nil`.
    static func decodedString(_ raw: [UInt8]) -> String? {
        guard raw.first == UInt8(ascii: "\"") else { return nil }
        var scanner = JSONScanner(bytes: raw)
        guard let text = try? scanner.scanString(decoding: true), scanner.index == raw.count else { return nil }
        return text
    }

    private mutating func validateDocument() throws(Failure) {
        skipWhitespace()
        try scanValue(depth: 1)
        skipWhitespace()
        guard index == bytes.count else { throw invalid("unexpected data after the JSON value") }
    }

    private mutating func scanTopLevelObject() throws(Failure) -> [Member] {
        index += 1  // "{"
        var members: [Member] = []
        var names = Set<String>()
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return members
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw invalid("expected a member name") }
            let name = try scanString(decoding: true)!
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw invalid("expected ':' after a member name") }
            index += 1
            skipWhitespace()
            let start = index
            try scanValue(depth: 2)
            guard names.insert(name).inserted else { throw .duplicateMember(name) }
            members.append(Member(name: name, raw: Array(bytes[start..<index])))
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return members
            default: throw invalid("expected ',' or '}' in an object")
            }
        }
    }

    private mutating func scanValue(depth: Int) throws(Failure) {
        guard let byte = peek() else { throw invalid("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            guard depth <= Self.maximumDepth else { throw .tooDeep }
            try scanContainer(closing: byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]"), depth: depth)
        case UInt8(ascii: "\""):
            _ = try scanString(decoding: false)
        case UInt8(ascii: "t"): try scanLiteral("true")
        case UInt8(ascii: "f"): try scanLiteral("false")
        case UInt8(ascii: "n"): try scanLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try scanNumber()
        default:
            throw invalid("unexpected character")
        }
    }

    private mutating func scanContainer(closing: UInt8, depth: Int) throws(Failure) {
        let isObject = closing == UInt8(ascii: "}")
        index += 1
        skipWhitespace()
        if peek() == closing {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            if isObject {
                guard peek() == UInt8(ascii: "\"") else { throw invalid("expected a member name") }
                _ = try scanString(decoding: false)
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw invalid("expected ':' after a member name") }
                index += 1
                skipWhitespace()
            }
            try scanValue(depth: depth + 1)
            skipWhitespace()
            guard let next = peek() else { throw invalid("unexpected end of input") }
            if next == UInt8(ascii: ",") {
                index += 1
            } else if next == closing {
                index += 1
                return
            } else {
                throw invalid(isObject ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array")
            }
        }
    }

    /// Scans a string starting at its opening quote; returns the decoded text when `decoding`.
    private mutating func scanString(decoding: Bool) throws(Failure) -> String? {
        index += 1  // opening quote
        var decoded: [UInt8] = []
        while true {
            guard let byte = peek() else { throw invalid("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return decoding ? String(decoding: decoded, as: UTF8.self) : nil
            case UInt8(ascii: "\\"):
                index += 1
                guard let escape = peek() else { throw invalid("unterminated string") }
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0c)
                case UInt8(ascii: "n"): decoded.append(0x0a)
                case UInt8(ascii: "r"): decoded.append(0x0d)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try scanHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard peek() == UInt8(ascii: "\\"), peek(offset: 1) == UInt8(ascii: "u") else {
                            throw invalid("unpaired surrogate in \\u escape")
                        }
                        index += 2
                        let low = try scanHex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw invalid("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw invalid("unpaired surrogate in \\u escape")
                    }
                    decoded.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                default:
                    throw invalid("invalid escape in string")
                }
            case 0x00..<0x20:
                throw invalid("unescaped control character in string")
            case 0x20..<0x80:
                decoded.append(byte)
                index += 1
            default:
                let length = try scanUTF8Sequence()
                if decoding { decoded.append(contentsOf: bytes[(index - length)..<index]) }
            }
        }
    }

    /// Validates one multi-byte UTF-8 sequence at `index` (RFC 3629: no overlongs, no surrogates).
    private mutating func scanUTF8Sequence() throws(Failure) -> Int {
        let lead = bytes[index]
        let length: Int
        var minimum: UInt32
        var scalar: UInt32
        switch lead {
        case 0xC2...0xDF: (length, minimum, scalar) = (2, 0x80, UInt32(lead & 0x1F))
        case 0xE0...0xEF: (length, minimum, scalar) = (3, 0x800, UInt32(lead & 0x0F))
        case 0xF0...0xF4: (length, minimum, scalar) = (4, 0x10000, UInt32(lead & 0x07))
        default: throw invalid("invalid UTF-8")
        }
        guard index + length <= bytes.count else { throw invalid("invalid UTF-8") }
        for offset in 1..<length {
            let continuation = bytes[index + offset]
            guard continuation & 0xC0 == 0x80 else { throw invalid("invalid UTF-8") }
            scalar = scalar << 6 | UInt32(continuation & 0x3F)
        }
        guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else {
            throw invalid("invalid UTF-8")
        }
        index += length
        return length
    }

    private mutating func scanHex4() throws(Failure) -> UInt32 {
        guard index + 4 <= bytes.count else { throw invalid("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw invalid("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func scanNumber() throws(Failure) {
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), isDigit(first) else { throw invalid("invalid number") }
        index += 1
        if first != UInt8(ascii: "0") {
            while let byte = peek(), isDigit(byte) { index += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard let byte = peek(), isDigit(byte) else { throw invalid("invalid number") }
            while let byte = peek(), isDigit(byte) { index += 1 }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard let byte = peek(), isDigit(byte) else { throw invalid("invalid number") }
            while let byte = peek(), isDigit(byte) { index += 1 }
        }
    }

    private mutating func scanLiteral(_ literal: StaticString) throws(Failure) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw invalid("invalid literal") }
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count where bytes[index + offset] != expected[offset] {
            throw invalid("invalid literal")
        }
        index += count
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
    }

    private func peek(offset: Int = 0) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private func invalid(_ reason: String) -> Failure {
        .invalid("\(reason) at byte \(index)")
    }
}
