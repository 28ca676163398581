import Foundation
import RedisClient
import RedisTestSupport
import Testing

/// Sentinels that require an ACL user: sessiond finds the primary through them with the configured
/// user and password, and says why it cannot with wrong ones.
@Suite struct SentinelCredentialsTests {
    static func service(primary: RedisServer, sentinel: RedisServer, username: String, password: String) async throws -> TestService {
        try await TestService.start(redis: primary) { configuration in
            configuration.findPrimary(through: [sentinel])
            configuration.sentinelUsername = username
            configuration.sentinelPassword = password
            configuration.failoverTimeout = .milliseconds(1000)
        }
    }

    @Test func anACLUserOfTheSentinelsFindsThePrimary() async throws {
        let primary = try await RedisServer.start()
        let sentinel = try await RedisServer.startSentinel(
            monitoring: primary, quorum: 1,
            extraConfig: ["user default off", "user sessiond on >sentinel-secret +@all"]
        )

        let service = try await Self.service(primary: primary, sentinel: sentinel, username: "sessiond", password: "sentinel-secret")
        // Ready once the sentinel answered (a lookup on a loaded machine may outlast the 1 s deadline).
        #expect(await eventually { try await service.request("GET", "/readyz").status == 200 })
        let ready = try await service.request("GET", "/readyz")
        let found = try #require(ready.jsonObject?["primary"] as? [String: Any])
        #expect(found["address"] as? String == "127.0.0.1:\(primary.port)")
        #expect(try await service.create(#"{"data":{"a":1}}"#).token.count == 68)
        await service.stop()

        let refused = try await Self.service(primary: primary, sentinel: sentinel, username: "sessiond", password: "wrong-secret")
        let notReady = try await refused.request("GET", "/readyz")
        #expect(notReady.status == 503)
        let error = try #require(notReady.jsonObject?["error"] as? [String: Any])
        #expect(error["code"] as? String == "storage_unavailable")
        #expect((error["message"] as? String)?.contains("WRONGPASS") == true, "says the sentinel refused the credentials")
        #expect(!notReady.text.contains("wrong-secret"), "the password must not appear in the answer")
        await refused.stop()
    }
}
