import RedisTestSupport
import Testing

/// API keys on /v1, and the refusal to serve unauthenticated beyond loopback.
@Suite struct AuthenticationTests {
    static let keys = ["first-key-0123456789abcdef", "second-key-0123456789abcdef"]

    @Test func withKeysConfiguredEveryV1RequestNeedsOne() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis) { $0.apiKeys = Self.keys }
        let refusals: [[(String, String)]] = [
            [], [("Authorization", "Bearer wrong-key-0123456789abcdef")], [("Authorization", "Bearer ")],
            [("Authorization", "Basic Zmlyc3Qta2V5")], [("Authorization", "Bearer first-key-0123456789abcde")],
            [("Authorization", "Bearer first-key-0123456789abcdefX")],
        ]
        let created = try await service.create(headers: [("Authorization", "Bearer \(Self.keys[0])")])
        for headers in refusals {
            // Routed by Hummingbird, and answered on the event loop (GET and PATCH /v1/session).
            let session = headers + [("X-Session-Token", created.token)]
            for response in [
                try await service.request("POST", "/v1/sessions", headers: headers, json: "{}"),
                try await service.request("GET", "/v1/session", headers: session),
                try await service.request("PATCH", "/v1/session", headers: session, json: #"{"a":1}"#),
            ] {
                #expect(response.status == 401, "\(headers)")
                #expect(response.errorCode == "unauthorized")
                #expect(response.header("WWW-Authenticate") == "Bearer")
            }
        }
        #expect(try await service.request("GET", "/v1/users/x/sessions").status == 401)
        // Either key works (rotation), with any capitalisation of the scheme.
        let read = try await service.request("GET", "/v1/session", headers: [("Authorization", "bearer \(Self.keys[1])"), ("X-Session-Token", created.token)])
        #expect(read.status == 200)
        #expect((read.jsonObject?["data"] as? [String: Any])?.isEmpty == true, "no refused PATCH was applied")
        // Health and the contract stay open to probes.
        #expect(try await service.request("GET", "/healthz").status == 200)
        #expect(try await service.request("GET", "/readyz").status == 200)
        await service.stop()
    }
}
