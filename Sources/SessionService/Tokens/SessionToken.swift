import COpenSSL

/// A session token: what an end user holds. `sds_` followed by the base64url (no padding) of the
/// session's 16-byte id and a 32-byte secret from OpenSSL's CSPRNG: 68 URL-safe characters, and a
/// prefix secret scanners can look for.
///
/// The id is public (logs, admin routes, Redis keys); the secret is not. Redis keeps only a digest
/// of the secret (``secretDigest``), so a dump, a replica or `MONITOR` holds no usable token, and
/// the token itself exists only in the answer that issues it and in the caller's requests.
struct SessionToken: Sendable {
    static let prefix = "sds_"
    static let secretByteCount = 32
    /// The digest kept of a secret: the first 128 bits of its SHA-256. Finding a secret for a known
    /// digest takes ~2^128 work, guessing one 2^256 tries; 16 bytes rather than 32 keep every
    /// session's hash 16 to 32 bytes smaller.
    static let digestByteCount = 16
    /// The characters of a token: the prefix and 64 base64url characters (48 bytes).
    static let length = prefix.utf8.count + (SessionID.byteCount + secretByteCount) / 3 * 4

    /// The text given to the caller.
    let text: String
    /// The session it belongs to.
    let id: SessionID
    /// The secret's digest (``digestByteCount`` bytes): what Redis keeps and what a presented token
    /// is compared with.
    let secretDigest: [UInt8]

    /// A token for a new session: a fresh id and a fresh secret.
    /// - Throws: ``SessionTokenError`` when the CSPRNG cannot produce bytes (never silently weaker).
    static func generate() throws(SessionTokenError) -> SessionToken {
        try generate(for: SessionID(bytes: try randomBytes(SessionID.byteCount)))
    }

    /// A new token for an existing session (a rotation): the same id, a fresh secret.
    static func generate(for id: SessionID) throws(SessionTokenError) -> SessionToken {
        let secret = try randomBytes(secretByteCount)
        return SessionToken(
            text: prefix + Base64URL.encode(id.bytes + secret), id: id, secretDigest: secret.withUnsafeBytes { digest(of: $0) }
        )
    }

    /// Parses a token received from a caller; `nil` unless it is exactly the prefix and 64 base64url
    /// characters (a malformed token is simply an unknown session).
    init?(parsing text: some StringProtocol) {
        guard text.utf8.count == Self.length, text.utf8.starts(with: Self.prefix.utf8),
            let bytes = Base64URL.decode(text.dropFirst(Self.prefix.count)),
            bytes.count == SessionID.byteCount + Self.secretByteCount
        else { return nil }
        self.text = String(text)
        self.id = SessionID(bytes: bytes.prefix(SessionID.byteCount))
        self.secretDigest = bytes.withUnsafeBytes { Self.digest(of: UnsafeRawBufferPointer(rebasing: $0[SessionID.byteCount...])) }
    }

    private init(text: String, id: SessionID, secretDigest: [UInt8]) {
        self.text = text
        self.id = id
        self.secretDigest = secretDigest
    }

    private static func randomBytes(_ count: Int) throws(SessionTokenError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&bytes, Int32(count)) == 1 else { throw SessionTokenError() }
        return bytes
    }

    /// The first ``digestByteCount`` bytes of the secret's SHA-256 (the whole digest is made on
    /// the stack: one allocation, for what is kept).
    private static func digest(of secret: UnsafeRawBufferPointer) -> [UInt8] {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Int(SHA256_DIGEST_LENGTH)) { digest in
            _ = SHA256(secret.baseAddress?.assumingMemoryBound(to: UInt8.self), secret.count, digest.baseAddress)
            return Array(digest.prefix(digestByteCount))
        }
    }
}

/// The CSPRNG failed; sessions cannot be created safely.
struct SessionTokenError: Error, CustomStringConvertible {
    var description: String { "OpenSSL's RAND_bytes could not produce random bytes" }
}

/// A session's public identifier: 128 random bits, fixed when the session is created and kept
/// through every rotation, in lowercase hex (32 characters). Safe to store, log and show to
/// administrators: it is part of the token but gives no way to its secret.
struct SessionID: Sendable, Hashable, CustomStringConvertible {
    static let byteCount = 16
    let hex: String

    init(bytes: some Collection<UInt8>) {
        self.hex = Hex.encode(bytes)
    }

    /// Accepts only the canonical form (32 lowercase hex digits); anything else is no session.
    init?(parsing text: some StringProtocol) {
        guard text.utf8.count == 2 * Self.byteCount, text.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            return nil
        }
        self.hex = String(text)
    }

    /// The 16 bytes the hex spells.
    var bytes: [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count, by: 2).map { Hex.value(digits[$0]) << 4 | Hex.value(digits[$0 + 1]) }
    }

    var description: String { hex }
}

enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Written straight into the string's own storage: one allocation (none up to 7 bytes).
    static func encode(_ bytes: some Collection<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { output in
            var index = 0
            for byte in bytes {
                output[index] = digits[Int(byte >> 4)]
                output[index + 1] = digits[Int(byte & 0x0f)]
                index += 2
            }
            return index
        }
    }

    /// The value of one lowercase hex digit (the caller has checked it is one).
    static func value(_ digit: UInt8) -> UInt8 {
        digit <= UInt8(ascii: "9") ? digit - UInt8(ascii: "0") : digit - UInt8(ascii: "a") + 10
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
        let input = text.utf8
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
