import Testing

@testable import SessionService

/// Token format, id derivation inputs, base64url strictness, timestamps, If-Match parsing.
@Suite struct TokenTests {
    @Test func tokensAre43Base64URLCharactersAndUnique() throws {
        var seen = Set<String>()
        for _ in 0..<1000 {
            let token = try SessionToken.generate()
            #expect(token.text.utf8.count == 43)
            #expect(token.text.allSatisfy { $0.isLetter && $0.isASCII || $0.isNumber || $0 == "-" || $0 == "_" })
            #expect(SessionToken(parsing: token.text)?.id == token.id)
            seen.insert(token.text)
        }
        #expect(seen.count == 1000)
    }

    @Test func malformedTokensParseToNothing() throws {
        let token = try SessionToken.generate().text
        for bad in ["", String(token.dropLast()), token + "A", String(token.dropLast()) + "=", String(token.dropLast()) + "+",
                    String(repeating: "A", count: 42) + "B"] {
            #expect(SessionToken(parsing: bad) == nil, "\(bad)")
        }
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
