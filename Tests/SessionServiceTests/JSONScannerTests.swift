import Testing

@testable import SessionService

/// The strict JSON validator that keeps attribute values byte for byte.
@Suite struct JSONScannerTests {
    @Test(arguments: [
        "{}", #"{"a":1}"#, " { \"a\" : [ 1 , { } , \"x\" ] , \"b\" : null } ", #"{"n":-0.0e-0}"#, #"{"s":"\u0000\t"}"#,
        #"{"":true,"e":false}"#, "{\"ü\":\"😀\"}",
    ])
    func acceptsValidObjects(text: String) throws {
        _ = try JSONScanner.members(of: Array(text.utf8))
    }

    @Test(arguments: [
        "", "{", "}", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, #"{a:1}"#, #"{'a':1}"#, #"{"a":tru}"#, #"{"a":1.}"#,
        #"{"a":.5}"#, #"{"a":+1}"#, #"{"a":0x1}"#, #"{"a":"\x"}"#, "{\"a\":\"\t\"}", #"{"a":"\u12"}"#, #"{"a":NaN}"#,
        #"{"a":1}}"#, #"{"a":[1,]}"#, #"{"a":"\udc00"}"#,
    ])
    func refusesInvalidJSON(text: String) {
        #expect(throws: JSONScanner.Failure.self) { try JSONScanner.members(of: Array(text.utf8)) }
    }

    @Test func refusesInvalidUTF8() {
        for bytes: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xE2, 0x82], [0xFF]] {
            let document = Array(#"{"a":""#.utf8) + bytes + Array(#""}"#.utf8)
            #expect(throws: JSONScanner.Failure.self) { try JSONScanner.members(of: document) }
        }
    }

    @Test func returnsRawValuesAndDecodedNames() throws {
        let members = try JSONScanner.members(of: Array(#"{"a\u0062c" : 1.10 , "d":{"e" :[ 1 ]}}"#.utf8))
        #expect(members.map(\.name) == ["abc", "d"])
        #expect(members.map { String(decoding: $0.raw, as: UTF8.self) } == ["1.10", #"{"e" :[ 1 ]}"#])
    }

    @Test func distinguishesTheKindsOfFailure() {
        #expect(throws: JSONScanner.Failure.notAnObject) { try JSONScanner.members(of: Array("[1]".utf8)) }
        #expect(throws: JSONScanner.Failure.duplicateMember("a")) { try JSONScanner.members(of: Array(#"{"a":1,"a":2}"#.utf8)) }
        let deep = "{\"a\":" + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "}"
        #expect(throws: JSONScanner.Failure.tooDeep) { try JSONScanner.members(of: Array(deep.utf8)) }
    }
}
