import Foundation
import RedisClient
import RedisTestSupport
import Testing

/// Tokens exist only in the caller's hands: nothing in Redis holds one or its secret (only the
/// secret's SHA-256).
@Suite struct SecurityTests {
    @Test func noTokenIsStoredAnywhereInRedis() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        var tokens: [String] = []
        for index in 0..<5 {
            let (token, _) = try await service.create("{\"user\":\"user\(index % 2)\",\"data\":{\"n\":\(index)}}")
            tokens.append(token)
        }
        let rotated = try await service.request("POST", "/v1/session/rotate", headers: [("X-Session-Token", tokens[0])])
        tokens.append(try #require(rotated.jsonObject?["token"] as? String))
        _ = try await service.patch(tokens[1], #"{"more":"data"}"#)

        // Everything Redis holds: every key name and every value of every type.
        let inspector = RedisClient.running(configuration: try RedisConfiguration(url: redis.url))
        var stored: [[UInt8]] = []
        let keys = try await inspector.send("KEYS", "*").array?.compactMap(\.bytes) ?? []
        #expect(keys.count >= 6)
        for key in keys {
            stored.append(key)
            let argument = RedisArgument(bytes: key)
            switch try await inspector.send("TYPE", argument).string {
            case "hash": stored += try await inspector.send("HGETALL", argument).array?.compactMap(\.bytes) ?? []
            case "zset": stored += try await inspector.send("ZRANGE", argument, "0", "-1").array?.compactMap(\.bytes) ?? []
            case "string": stored += [try await inspector.send("GET", argument).bytes ?? []]
            case "stream":
                // The event log: every entry's id, field names and values.
                for entry in try await inspector.send("XRANGE", argument, "-", "+").array ?? [] {
                    stored += entry.array?.flatMap { $0.array?.compactMap(\.bytes) ?? $0.bytes.map { [$0] } ?? [] } ?? []
                }
            case "none": continue  // a lease that lapsed between KEYS and TYPE
            case let other: Issue.record("unexpected key type \(other ?? "?")")
            }
        }
        let haystack = stored.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n")
        for token in tokens {
            #expect(!haystack.contains(token), "a token was found in Redis")
            #expect(!haystack.contains(String(token.suffix(43))), "part of a token was found in Redis")
            // Nor its secret in any spelling: the raw bytes, hex, base64url.
            var base64 = String(token.dropFirst(4)).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
            let secret = Array(try #require(Data(base64Encoded: base64)).suffix(32))
            #expect(secret.count == 32)
            let hex = secret.map { String(format: "%02x", $0) }.joined()
            #expect(!haystack.contains(hex) && !haystack.contains(hex.uppercased()), "a secret was found in Redis, in hex")
            #expect(!stored.contains { value in value.count >= 32 && (0...(value.count - 32)).contains { Array(value[$0..<($0 + 32)]) == secret } },
                    "a secret was found in Redis, raw")
        }
        await inspector.shutdown()
        await service.stop()
    }

    /// sessiond works under a Redis user that has only the rule README gives (deploy/redis-acl.rule),
    /// every route included, and that user can touch nothing outside sessiond's keys.
    @Test func everyRouteWorksUnderAUserWithOnlyTheDocumentedACLRule() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let rule = try String(contentsOf: root.appendingPathComponent("deploy/redis-acl.rule"), encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }.joined(separator: " ")
        #expect(rule.contains("~sd:*") && rule.contains("-@all"))
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains("ACL SETUSER sessiond on >PASSWORD \(rule)\n"), "README gives the rule the test uses")
        let redis = try await RedisServer.start()
        let admin = RedisClient.running(configuration: try RedisConfiguration(url: redis.url))
        let setUser = ["ACL", "SETUSER", "sessiond", "reset", "on", ">a-test-password"] + rule.split(separator: " ").map(String.init)
        #expect(try await admin.send(setUser.map { RedisArgument($0) }) == .simpleString("OK"))

        let service = try await TestService.start(redis: redis) {
            $0.redisURL = "redis://sessiond:a-test-password@127.0.0.1:\(redis.port)"
            $0.touchInterval = .seconds(0)  // every read slides: session_touch too
        }
        #expect(try await service.request("GET", "/readyz").status == 200)
        let (token, session) = try await service.create(#"{"user":"lee","data":{"a":1}}"#)
        let id = try #require(session["id"] as? String)
        #expect(try await service.get(token).status == 200)
        #expect(try await service.patch(token, #"{"b":2}"#).status == 200)
        #expect(try await service.request("PUT", "/v1/session/data", headers: [("X-Session-Token", token)], json: #"{"c":3}"#).status == 200)
        let rotated = try await service.request("POST", "/v1/session/rotate", headers: [("X-Session-Token", token)])
        #expect(rotated.status == 200)
        let newToken = try #require(rotated.jsonObject?["token"] as? String)
        let newID = try #require((rotated.jsonObject?["session"] as? [String: Any])?["id"] as? String)
        #expect(newID == id, "a rotation keeps the id")
        #expect(try await service.request("GET", "/v1/sessions/\(newID)").status == 200)
        #expect(try await service.request("GET", "/v1/users/lee/sessions").status == 200)
        #expect(try await service.request("DELETE", "/v1/session", headers: [("X-Session-Token", newToken)]).status == 204)
        _ = try await service.create(#"{"user":"lee"}"#)
        #expect(try await service.request("DELETE", "/v1/users/lee/sessions").jsonObject?["revoked"] as? Int == 1)

        // The rule is narrow: the user reaches no other key and no other command.
        let restricted = RedisClient.running(configuration: try RedisConfiguration(url: "redis://sessiond:a-test-password@127.0.0.1:\(redis.port)"))
        for command in [["GET", "other:key"], ["FLUSHALL"], ["KEYS", "*"], ["CONFIG", "GET", "*"]] {
            await #expect(throws: RedisClientError.self, "\(command) is refused") {
                _ = try await restricted.send(command.map { RedisArgument($0) })
            }
        }
        await restricted.shutdown()
        await admin.shutdown()
        await service.stop()
    }
}
