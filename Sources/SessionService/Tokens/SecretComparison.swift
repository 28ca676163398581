import COpenSSL

/// Compares a presented secret (an API key, a token secret's digest) with the known ones in time
/// that does not depend on where (or whether) they differ, so response timing leaks nothing.
enum SecretComparison {
    /// Whether two digests are equal (OpenSSL's `CRYPTO_memcmp`); unequal lengths are simply unequal.
    static func digestsAreEqual(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        guard left.count == right.count else { return false }
        return left.withUnsafeBytes { left in
            right.withUnsafeBytes { right in CRYPTO_memcmp(left.baseAddress, right.baseAddress, left.count) == 0 }
        }
    }

    /// Whether `presented` equals any of `secrets`. Every secret is compared, always.
    static func matchesAny(_ presented: some StringProtocol, of secrets: [[UInt8]]) -> Bool {
        let candidate = Array(presented.utf8)
        var matched = false
        for secret in secrets {
            // Compare equal-length buffers only; the length check itself reveals only the length.
            var padded = candidate
            if padded.count != secret.count {
                padded = [UInt8](repeating: 0, count: secret.count)
            }
            let equalBytes = padded.withUnsafeBytes { left in
                secret.withUnsafeBytes { right in
                    CRYPTO_memcmp(left.baseAddress, right.baseAddress, secret.count) == 0
                }
            }
            matched = matched || (equalBytes && candidate.count == secret.count)
        }
        return matched
    }
}
