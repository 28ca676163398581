import COpenSSL

/// Compares a presented secret with the configured ones in time that does not depend on where
/// (or whether) they differ, so response timing leaks nothing about a key.
enum SecretComparison {
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
