import Testing

@testable import SessionService

/// Token format, id derivation inputs, base64url strictness, timestamps, If-Match parsing.
@Suite struct TokenTests {
    @Test func tokensArePrefixedFixedLengthBase64URLAndUnique() throws {
        var seen = Set<String>()
        var ids = Set<SessionID>()
        for _ in 0..<1000 {
            let token = try SessionToken.generate()
            #expect(token.text.utf8.count == 68)
            #expect(token.text.hasPrefix("sds_"))
            #expect(token.text.dropFirst(4).allSatisfy { $0.isLetter && $0.isASCII || $0.isNumber || $0 == "-" || $0 == "_" })
            let parsed = try #require(SessionToken(parsing: token.text))
            #expect(parsed.id == token.id)
            #expect(parsed.secretDigest == token.secretDigest)
            #expect(token.secretDigest.count == 16)
            #expect(token.id.hex.utf8.count == 32)
            seen.insert(token.text)
            ids.insert(token.id)
        }
        #expect(seen.count == 1000)
        #expect(ids.count == 1000)
    }

    @Test func aRotatedTokenKeepsTheIdAndChangesTheSecret() throws {
        let token = try SessionToken.generate()
        let next = try SessionToken.generate(for: token.id)
        #expect(next.id == token.id)
        #expect(next.text != token.text)
        #expect(next.secretDigest != token.secretDigest)
        #expect(SessionID(bytes: token.id.bytes) == token.id)
    }

    @Test func malformedTokensParseToNothing() throws {
        let token = try SessionToken.generate().text
        for bad in ["", String(token.dropLast()), token + "A", String(token.dropLast()) + "=", String(token.dropLast()) + "+",
                    "sdx_" + token.dropFirst(4), String(token.dropFirst(4)) + "AAAA", "sds_" + String(repeating: "A", count: 63) + "+",
                    String(repeating: "A", count: 43)] {
            #expect(SessionToken(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func digestComparisonIsExact() {
        let digest = [UInt8](repeating: 7, count: 32)
        #expect(SecretComparison.digestsAreEqual(digest, digest))
        for index in [0, 15, 31] {
            var other = digest
            other[index] ^= 1
            #expect(!SecretComparison.digestsAreEqual(digest, other))
        }
        #expect(!SecretComparison.digestsAreEqual(digest, Array(digest.prefix(31))))
    }

    @Test func base64URLRoundTrips() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(($0 * 37 + 11) % 256) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
    }

    @Test func timestampsAreRFC3339UTCWithMilliseconds() {
        #expect(Timestamp.rfc3339(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.rfc3339(milliseconds: 951_782_400_007) == "2000-02-29T00:00:00.007Z")
        #expect(Timestamp.rfc3339(milliseconds: 1_795_616_256_123) == "2026-11-25T14:17:36.123Z")
        #expect(Timestamp.rfc3339(milliseconds: -1) == "1969-12-31T23:59:59.999Z")
    }

    @Test func ifMatchParsing() {
        #expect(IfMatch(header: "*") == .any)
        #expect(IfMatch(header: " \"3\" ") == .versions([3]))
        #expect(IfMatch(header: "\"3\", \"5\"") == .versions([3, 5]))
        for bad in ["", "3", "W/\"3\"", "\"0\"", "\"-1\"", "\"3\",", "\"a\""] {
            #expect(IfMatch(header: bad) == nil, "\(bad)")
        }
    }
}
