import Foundation
import RedisTestSupport
import Testing

/// `GET /v1/auth` behind a real nginx (`auth_request`, Debian's package) running the repository's
/// deploy/nginx-gateway.conf in front of a tiny application (an nginx server block that echoes the
/// headers it was given), and on its own over HTTP.
@Suite struct GatewayTests {
    static let apiKey = String(repeating: "g", count: 24)

    /// deploy/nginx-gateway.conf and deploy/nginx-application.conf (the demo's application: it
    /// answers with the identity headers it was given), filled in with this test's addresses and
    /// key as envsubst would. Returns nginx, listening on the gateway's port.
    static func gateway(sessiondPort: Int) async throws -> NginxServer {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var configuration = try ["deploy/nginx-gateway.conf", "deploy/nginx-application.conf"].map {
            try String(contentsOf: root.appendingPathComponent($0), encoding: .utf8)
        }.joined(separator: "\n")
        let gatewayFile = try String(contentsOf: root.appendingPathComponent("deploy/nginx-gateway.conf"), encoding: .utf8)
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains("```nginx\n" + gatewayFile + "```"), "README gives the configuration the test runs")
        let gatewayPort = try freeLoopbackPort()
        let applicationPort = try freeLoopbackPort()
        for (name, value) in [
            ("SESSIOND_UPSTREAM", "127.0.0.1:\(sessiondPort)"), ("APPLICATION_UPSTREAM", "127.0.0.1:\(applicationPort)"),
            ("GATEWAY_LISTEN", "127.0.0.1:\(gatewayPort)"), ("APPLICATION_LISTEN", "127.0.0.1:\(applicationPort)"),
            ("SESSIOND_API_KEY", apiKey),
        ] {
            #expect(configuration.contains("${\(name)}"), "the deploy files use ${\(name)}")
            configuration = configuration.replacingOccurrences(of: "${\(name)}", with: value)
        }
        #expect(configuration.firstMatch(of: /\$\{[A-Z_]+\}/) == nil, "nothing left to fill in")
        return try await NginxServer.start(httpConfiguration: configuration, port: gatewayPort)
    }

    static func service(redis: RedisServer) async throws -> TestService {
        try await TestService.start(redis: redis) {
            $0.apiKeys = [apiKey]
            $0.cookieName = "sid"
            $0.authAttributes = ["role"]
        }
    }

    static let auth = [("Authorization", "Bearer \(apiKey)")]

    @Test func nginxAdmitsOnlyRequestsWithALiveSessionCookieAndPassesOnWhoItIs() async throws {
        let redis = try await RedisServer.start()
        let service = try await Self.service(redis: redis)
        let nginx = try await Self.gateway(sessiondPort: service.port)
        let (token, session) = try await service.create(#"{"user":"ann","data":{"role":"admin","cart":[1,2]}}"#, headers: Self.auth)
        let id = try #require(session["id"] as? String)

        #expect(try await HTTPTestClient.request("GET", port: nginx.port, "/orders").status == 401, "no session: refused at the gateway")
        let wrong = try await HTTPTestClient.request("GET", port: nginx.port, "/orders", headers: [("Cookie", "sid=not-a-token")])
        #expect(wrong.status == 401)
        // A client's own identity headers never reach the application.
        let admitted = try await HTTPTestClient.request(
            "GET", port: nginx.port, "/orders", headers: [("Cookie", "theme=dark; sid=\(token)"), ("X-Session-User", "mallory")]
        )
        #expect(admitted.status == 200)
        #expect(admitted.text == "id=\(id) user=ann role=\"admin\" token=\n")

        #expect(try await service.request("DELETE", "/v1/sessions/\(id)", headers: Self.auth).status == 204)
        #expect(try await HTTPTestClient.request("GET", port: nginx.port, "/orders", headers: [("Cookie", "sid=\(token)")]).status == 401,
                "revoked: refused on the next request")
        await nginx.stop()
        await service.stop()
    }

    @Test func nginxAdmitsATokenInTheHeaderAndTheApplicationNeverSeesIt() async throws {
        let redis = try await RedisServer.start()
        let service = try await Self.service(redis: redis)
        let nginx = try await Self.gateway(sessiondPort: service.port)
        let (token, session) = try await service.create(#"{"user":"bo","data":{"role":["ops"]}}"#, headers: Self.auth)
        let id = try #require(session["id"] as? String)
        let (anonymousToken, _) = try await service.create(#"{"data":{"cart":[]}}"#, headers: Self.auth)

        #expect(try await HTTPTestClient.request("GET", port: nginx.port, "/", headers: [("X-Session-Token", "nope")]).status == 401)
        let admitted = try await HTTPTestClient.request("GET", port: nginx.port, "/", headers: [("X-Session-Token", token)])
        #expect(admitted.status == 200)
        #expect(admitted.text == "id=\(id) user=bo role=[\"ops\"] token=\n", "the token itself is not passed on")
        let anonymous = try await HTTPTestClient.request(
            "GET", port: nginx.port, "/", headers: [("X-Session-Token", anonymousToken), ("X-Session-User", "mallory")]
        )
        #expect(anonymous.status == 200)
        #expect(anonymous.text.contains(" user= role= token="), "no user, no role: nothing passed on, nothing forged")

        #expect(try await service.request("DELETE", "/v1/users/bo/sessions", headers: Self.auth).status == 200)
        #expect(try await HTTPTestClient.request("GET", port: nginx.port, "/", headers: [("X-Session-Token", token)]).status == 401,
                "revoked: refused on the next request")
        await nginx.stop()
        await service.stop()
    }

    @Test func theAuthEndpointSaysWhoTheSessionIsAndLeavesOutWhatCannotBeAHeader() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis) {
            $0.cookieName = "sid"
            $0.authAttributes = ["role", "note", "big", "absent"]
            $0.touchInterval = .seconds(0)
        }
        let (token, session) = try await service.create(
            "{\"user\":\"Zoë %/x y\",\"data\":{\"role\":{\"level\":\t2},\"note\":{\"a\":\n1},\"big\":\"\(String(repeating: "b", count: 3000))\"}}"
        )
        let id = try #require(session["id"] as? String)
        let seen = try #require(session["last_seen_at"] as? String)

        let answer = try await service.request("GET", "/v1/auth", headers: [("Cookie", "sid=\(token)")])
        #expect(answer.status == 200)
        #expect(answer.body.isEmpty)
        #expect(answer.header("X-Session-Id") == id)
        #expect(answer.header("X-Session-User") == "Zo%C3%AB%20%25/x%20y", "printable ASCII as is, everything else percent-encoded")
        #expect(answer.header("X-Session-Attribute-role") == "{\"level\":\t2}", "raw JSON, a tab included")
        #expect(answer.header("X-Session-Attribute-note") == nil && answer.header("X-Session-Attribute-big") == nil)
        #expect(answer.header("X-Session-Attributes-Omitted") == "note, big", "left out, never cut, and said so")
        #expect(answer.header("Cache-Control") == "no-store")
        let read = try await service.get(token, query: "?touch=false")
        #expect(read.jsonObject?["last_seen_at"] as? String != seen, "it slides the idle deadline as a read does")

        let head = try await service.request("HEAD", "/v1/auth", headers: [("X-Session-Token", token)])
        #expect(head.status == 200 && head.header("X-Session-Id") == id && head.body.isEmpty)
        for headers in [[], [("X-Session-Token", "garbage")], [("Cookie", "other=\(token)")]] {
            let refused = try await service.request("GET", "/v1/auth", headers: headers)
            #expect(refused.status == 401 && refused.errorCode == "not_authenticated", "\(headers)")
        }
        _ = try await service.request("DELETE", "/v1/session", headers: [("X-Session-Token", token)])
        #expect(try await service.request("GET", "/v1/auth", headers: [("X-Session-Token", token)]).status == 401)
        await service.stop()
    }
}
