import Foundation
import RedisClient
import RedisTestSupport
import Testing

@testable import SessionService

/// How large a session may grow: attribute names checked in sessiond, sizes checked by the write
/// function in the same atomic call that would apply the write, so that concurrent writes cannot
/// pass a limit together. Against real Redis; the name rules also without it.
@Suite struct SessionLimitsTests {
    static let limits = SessionLimits(maxDataBytes: 1000, maxAttributes: 4, maxNameBytes: 8)

    static func code(_ response: HTTPTestResponse) -> String? {
        (response.jsonObject?["error"] as? [String: Any])?["code"] as? String
    }

    @Test func namesAreOneToTheLimitBytesWithoutControlCharacters() throws {
        func refused(_ name: String) -> Bool {
            do {
                try Self.limits.checkNames([Session.Attribute(name: name, raw: Array("1".utf8))])
                return false
            } catch {
                guard case .invalidAttributeName = error else { return false }
                return true
            }
        }
        #expect(!refused("a") && !refused("12345678") && !refused("é") && !refused("a b") && !refused("ü-ö"))
        #expect(refused("") && refused("123456789") && refused("a\u{0}") && refused("\u{7F}x") && refused("x\u{85}") && refused("tab\t"))
        #expect(refused("éééé" + "é"), "bytes, not characters: 10 bytes")
    }

    @Test func aNewSessionOverALimitIsRefusedBeforeRedisIsAsked() {
        let small = [Session.Attribute(name: "a", raw: Array(String(repeating: "1", count: 999).utf8))]
        #expect(throws: Never.self) { try Self.limits.check(newSessionData: small) }
        let over = [Session.Attribute(name: "ab", raw: Array(String(repeating: "1", count: 999).utf8))]
        let many = (0..<5).map { Session.Attribute(name: "a\($0)", raw: Array("1".utf8)) }
        for data in [over, many] {
            #expect {
                try Self.limits.check(newSessionData: data)
            } throws: { error in
                guard case SessionStoreError.sessionTooLarge = error else { return false }
                return true
            }
        }
    }

    /// The default limits against a live sessiond: what README and openapi.yaml promise.
    @Test func defaultLimitsAnswer413Or400AndWriteNothing() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        let (token, _) = try await service.create(#"{"data":{"keep":1}}"#)
        let manyMembers = "{" + (0..<257).map { "\"a\($0)\":1" }.joined(separator: ",") + "}"
        let fiveThousand = "{" + (0..<5000).map { "\"b\($0)\":1" }.joined(separator: ",") + "}"
        let longName = "{\"\(String(repeating: "n", count: 129))\":1}"
        let checks: [(String, HTTPTestResponse, Int, String)] = [
            ("257 attributes in a create", try await service.request("POST", "/v1/sessions", json: "{\"data\":\(manyMembers)}"), 413, "session_too_large"),
            ("5,000 attributes in a patch", try await service.patch(token, fiveThousand), 413, "session_too_large"),
            ("257 attributes in a replace", try await service.request("PUT", "/v1/session/data", headers: [("X-Session-Token", token)], json: manyMembers), 413, "session_too_large"),
            ("an empty name", try await service.patch(token, #"{"":1}"#), 400, "invalid_attribute_name"),
            ("a 129-byte name", try await service.patch(token, longName), 400, "invalid_attribute_name"),
            ("a control character", try await service.patch(token, #"{"a\u0001":1}"#), 400, "invalid_attribute_name"),
            ("an empty name in a create", try await service.request("POST", "/v1/sessions", json: #"{"data":{"":1}}"#), 400, "invalid_attribute_name"),
        ]
        for (what, response, status, code) in checks {
            #expect(response.status == status && Self.code(response) == code, "\(what): \(response.status) \(response.text)")
        }
        let session = try #require(try await service.get(token).jsonObject)
        #expect(session["version"] as? Int == 1, "nothing was written")
        #expect((session["data"] as? [String: Any])?.keys.sorted() == ["keep"])
        await service.stop()
    }

    /// 200 PATCHes of 60 KB no longer make one 12 MB session: the write that would pass 256 KiB is
    /// refused, and the session keeps what it had.
    @Test func patchesThatWouldGrowASessionPastTheLimitAreRefused() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        let (token, _) = try await service.create()
        let chunk = String(repeating: "x", count: 60_000)
        var accepted = 0
        var refusal: HTTPTestResponse?
        for index in 0..<10 {
            let response = try await service.patch(token, "{\"part\(index)\":\"\(chunk)\"}")
            if response.status == 200 { accepted += 1 } else { refusal = response; break }
        }
        #expect(accepted == 4, "4 × 60 KB fit in 256 KiB, a fifth does not")
        #expect(refusal.map { $0.status == 413 && Self.code($0) == "session_too_large" } == true, "\(refusal?.text ?? "")")
        #expect(refusal?.text.contains("300035 bytes in 5 attributes") == true, "\(refusal?.text ?? "")")
        // Replacing a part with one of the same size, or deleting one, is fine at the limit.
        #expect(try await service.patch(token, "{\"part0\":\"\(chunk)\"}").status == 200)
        #expect(try await service.patch(token, #"{"part1":null}"#).status == 200)
        #expect(try await service.patch(token, "{\"part9\":\"\(chunk)\"}").status == 200)
        await service.stop()
    }

    /// The write function keeps a bound on the size that only grows, and measures the data when
    /// the bound would pass a limit: rewriting one attribute many times is never counted twice.
    @Test func rewritingOneAttributeManyTimesStaysWithinTheLimits() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis) { $0.maxSessionBytes = 1024; $0.maxAttributes = 2 }
        let (token, _) = try await service.create(#"{"data":{"b":1}}"#)
        let value = String(repeating: "r", count: 600)
        var statuses: [Int: Int] = [:]
        for index in 0..<20 {
            statuses[try await service.patch(token, "{\"a\":\"\(index)\(value)\"}").status, default: 0] += 1
        }
        #expect(statuses == [200: 20], "\(statuses)")
        #expect(try await service.patch(token, #"{"c":1}"#).status == 413, "a third attribute is still one too many")
        await service.stop()
    }

    /// Two writers that each fit alone but not together: exactly one of them is applied, however
    /// they interleave (both at once, many times over).
    @Test func concurrentWritesCannotPassTheLimitTogether() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis) { $0.maxSessionBytes = 100_000 }
        for round in 0..<10 {
            let (token, _) = try await service.create()
            let half = String(repeating: "y", count: 60_000)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for writer in 0..<2 {
                    group.addTask { try await service.patch(token, "{\"w\(writer)\":\"\(half)\"}").status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }.sorted()
            }
            #expect(statuses == [200, 413], "round \(round): \(statuses)")
            let data = try #require(try await service.get(token).jsonObject?["data"] as? [String: Any])
            #expect(data.count == 1, "round \(round): one write applied")
        }
        await service.stop()
    }

    /// A session already over a lowered limit can be shrunk but not grown; and a size kept by a
    /// writer that did not keep it (sessiond before these limits) is counted again, not trusted.
    @Test func aSessionOverALoweredLimitShrinksButDoesNotGrowAndAStaleSizeIsRecounted() async throws {
        let redis = try await RedisServer.start()
        let generous = try await TestService.start(redis: redis)
        let strict = try await TestService.start(redis: redis) { $0.maxSessionBytes = 2048; $0.maxAttributes = 2 }
        let big = String(repeating: "z", count: 1500)
        let (token, session) = try await generous.create("{\"data\":{\"a\":\"\(big)\",\"b\":\"\(big)\",\"c\":1}}")
        #expect(try await strict.patch(token, #"{"d":1}"#).status == 413, "growing past both lowered limits")
        #expect(try await strict.patch(token, #"{"a":null}"#).status == 200, "shrinking, still over them")
        #expect(try await strict.patch(token, #"{"b":null}"#).status == 200)
        #expect(try await strict.patch(token, #"{"d":2}"#).status == 200, "under both again")

        // What an older sessiond does: writes attributes without keeping the size ('z').
        let id = try #require(session["id"] as? String)
        let client = try WriteIDTests.client(redis)
        let key = RedisArgument(SessionKeys(prefix: "sd:").session(try #require(SessionID(parsing: id)), in: .newest))
        let meta = try #require(try await client.send(["HGET", key, "m"]).bytes)
        let version = SessionMeta.integer(0, in: meta) + 1
        var moved = meta
        for index in 0..<SessionMeta.integerByteCount { moved[index] = UInt8(truncatingIfNeeded: version >> (8 * index)) }
        _ = try await client.send(["HSET", key, ".e", RedisArgument("\"\(big)\""), ".f", RedisArgument("\"\(big)\""), "m", RedisArgument(bytes: moved)])
        #expect(try await strict.patch(token, #"{"g":1}"#).status == 413, "counted again from the hash: over the limit")
        _ = try await client.send(["HDEL", key, "z"])
        #expect(try await strict.patch(token, #"{"g":1}"#).status == 413, "no size at all: counted from the hash")
        #expect(try await strict.patch(token, #"{"e":null,"f":null}"#).status == 200)
        #expect(try await strict.patch(token, #"{"c":null,"g":1}"#).status == 200, "two attributes, a few bytes")
        await client.shutdown()
        await generous.stop()
        await strict.stop()
    }
}
