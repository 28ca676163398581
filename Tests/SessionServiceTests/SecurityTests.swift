import RedisClient
import RedisTestSupport
import Testing

/// Tokens exist only in the caller's hands: nothing in Redis holds one.
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
        let inspector = RedisClient(configuration: try RedisConfiguration(url: redis.url))
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
            case let other: Issue.record("unexpected key type \(other ?? "?")")
            }
        }
        let haystack = stored.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n")
        for token in tokens {
            #expect(!haystack.contains(token), "a token was found in Redis")
            #expect(!haystack.contains(String(token.prefix(16))), "part of a token was found in Redis")
        }
        await inspector.shutdown()
        await service.stop()
    }
}
