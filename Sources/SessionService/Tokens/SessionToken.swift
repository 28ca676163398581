import COpenSSL

/// A session token: the secret an end user holds. 32 bytes from OpenSSL's CSPRNG, base64url without
/// padding (43 characters).
///
/// Only its hash (``SessionID``) is ever stored or logged; the token itself exists in the
/// response that creates it and in the caller's `X-Session-Token` header, nowhere else.
struct SessionToken: Sendable {
    /// The 43-character base64url text given to the caller.
    let text: String
    /// The id Redis and logs know the session by.
    let id: SessionID

    /// A fresh random token.
    /// - Throws: ``SessionTokenError`` when the CSPRNG cannot produce bytes (never silently weaker).
    static func generate() throws -> SessionToken {
        var bytes = [UInt8](repeating: 0, count: 32)
        guard RAND_bytes(&bytes, 32) == 1 else { throw SessionTokenError() }
        return SessionToken(text: Base64URL.encode(bytes), id: SessionID(hashing: bytes))
    }

    /// Parses a token received from a caller; `nil` unless it is exactly 43 base64url characters that
    /// decode to 32 bytes (a malformed token is simply an unknown session).
    init?(parsing text: some StringProtocol) {
        guard text.utf8.count == 43, let bytes = Base64URL.decode(text), bytes.count == 32 else { return nil }
        self.text = String(text)
        self.id = SessionID(hashing: bytes)
    }

    private init(text: String, id: SessionID) {
        self.text = text
        self.id = id
    }
}

/// The CSPRNG failed; sessions cannot be created safely.
struct SessionTokenError: Error, CustomStringConvertible {
    var description: String { "OpenSSL's RAND_bytes could not produce random bytes" }
}

/// A session's public identifier: the first 128 bits of the SHA-256 of its token's 32 bytes, in
/// lowercase hex (32 characters). Safe to store, log and show to administrators: it gives no way back
/// to the token. 128 bits, not all 256, because the id is the Redis key and the user index entry of
/// every session: the shorter key is ~44 bytes less Redis memory per session, and 128 bits keep
/// collisions (birthday bound ~2^64 sessions) and finding a token for a known id (2^128 work) out of reach.
struct SessionID: Sendable, Hashable, CustomStringConvertible {
    /// 128 bits of the digest.
    static let byteCount = 16
    let hex: String

    init(hashing tokenBytes: [UInt8]) {
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        tokenBytes.withUnsafeBufferPointer { input in
            _ = SHA256(input.baseAddress, input.count, &digest)
        }
        self.hex = Hex.encode(Array(digest.prefix(Self.byteCount)))
    }

    /// Accepts only the canonical form (32 lowercase hex digits); anything else is no session.
    init?(parsing text: some StringProtocol) {
        guard text.utf8.count == 2 * Self.byteCount, text.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            return nil
        }
        self.hex = String(text)
    }

    var description: String { hex }
}

enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var output = [UInt8]()
        output.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// Base64url (RFC 4648 §5) without padding.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let reverse: [Int8] = {
        var table = [Int8](repeating: -1, count: 256)
        for (index, character) in alphabet.enumerated() { table[Int(character)] = Int8(index) }
        return table
    }()

    static func encode(_ bytes: [UInt8]) -> String {
        var output = [UInt8]()
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index + 2 < bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in [18, 12, 6, 0] { output.append(alphabet[Int((chunk >> UInt32(shift)) & 63)]) }
            index += 3
        }
        let remaining = bytes.count - index
        if remaining == 1 {
            let chunk = UInt32(bytes[index]) << 16
            for shift in [18, 12] { output.append(alphabet[Int((chunk >> UInt32(shift)) & 63)]) }
        } else if remaining == 2 {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            for shift in [18, 12, 6] { output.append(alphabet[Int((chunk >> UInt32(shift)) & 63)]) }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// `nil` for any character outside the alphabet, padding, or an impossible length.
    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 != 1 else { return nil }
        var output = [UInt8]()
        output.reserveCapacity(input.count * 3 / 4)
        var buffer: UInt32 = 0
        var bits = 0
        for character in input {
            let value = reverse[Int(character)]
            guard value >= 0 else { return nil }
            buffer = buffer << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8((buffer >> UInt32(bits)) & 0xff))
            }
        }
        // Non-canonical encodings (stray low bits) are refused, so each token has one spelling.
        guard buffer & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return output
    }
}
