import Foundation
import RedisTestSupport
import Testing

/// Bad input gets a clear status and a stable error code, never a crash or a silent change.
@Suite struct ErrorTests {
    @Test func everyErrorHasTheDocumentedShapeAndCode() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis) { $0.maxBodyBytes = 1024 }
        let (token, _) = try await service.create(#"{"data":{"x":1}}"#)
        let tokenHeader = [("X-Session-Token", token)]
        let cases: [(String, HTTPTestResponse, Int, String)] = [
            ("missing token", try await service.request("GET", "/v1/session"), 400, "missing_session_token"),
            ("missing token on PATCH", try await service.request("PATCH", "/v1/session", json: "{}"), 400, "missing_session_token"),
            ("malformed token", try await service.get("not a token"), 404, "session_not_found"),
            ("well-formed unknown token", try await service.get("sds_" + String(repeating: "A", count: 64)), 404, "session_not_found"),
            ("token with padding", try await service.get(String(token.dropLast()) + "="), 404, "session_not_found"),
            ("not JSON", try await service.request("POST", "/v1/sessions", json: "{nope"), 400, "invalid_json"),
            ("trailing garbage", try await service.patch(token, #"{"a":1} x"#), 400, "invalid_json"),
            ("lone surrogate", try await service.patch(token, #"{"a":"\ud800"}"#), 400, "invalid_json"),
            ("leading zero", try await service.patch(token, #"{"a":01}"#), 400, "invalid_json"),
            ("empty body on PATCH", try await service.request("PATCH", "/v1/session", headers: tokenHeader, json: ""), 400, "invalid_json"),
            ("array body", try await service.patch(token, "[1]"), 400, "invalid_request"),
            ("duplicate member", try await service.patch(token, #"{"a":1,"a":2}"#), 400, "invalid_request"),
            ("unknown create member", try await service.request("POST", "/v1/sessions", json: #"{"usr":"x"}"#), 400, "invalid_request"),
            ("user not a string", try await service.request("POST", "/v1/sessions", json: #"{"user":42}"#), 400, "invalid_request"),
            ("empty user", try await service.request("POST", "/v1/sessions", json: #"{"user":""}"#), 400, "invalid_request"),
            ("user over 256 bytes", try await service.request("POST", "/v1/sessions", json: "{\"user\":\"\(String(repeating: "é", count: 129))\"}"), 400, "invalid_request"),
            ("data not an object", try await service.request("POST", "/v1/sessions", json: #"{"data":[1]}"#), 400, "invalid_request"),
            ("zero timeout", try await service.request("POST", "/v1/sessions", json: #"{"idle_timeout":0}"#), 400, "invalid_request"),
            ("fractional timeout", try await service.request("POST", "/v1/sessions", json: #"{"absolute_timeout":1.5}"#), 400, "invalid_request"),
            ("negative timeout", try await service.request("POST", "/v1/sessions", json: #"{"idle_timeout":-5}"#), 400, "invalid_request"),
            ("huge timeout", try await service.request("POST", "/v1/sessions", json: #"{"idle_timeout":99999999999999999999}"#), 400, "invalid_request"),
            ("text/plain body", try await service.request("PATCH", "/v1/session", headers: tokenHeader + [("Content-Type", "text/plain")]), 415, "unsupported_media_type"),
            ("body without content type", try await HTTPTestClient.request("PATCH", port: service.port, "/v1/session", headers: tokenHeader, body: Array("{}".utf8)), 415, "unsupported_media_type"),
            ("body over the limit", try await service.patch(token, "{\"a\":\"\(String(repeating: "x", count: 2000))\"}"), 413, "payload_too_large"),
            ("unknown path", try await service.request("GET", "/v2/session"), 404, "not_found"),
            ("wrong method", try await service.request("PUT", "/v1/session", headers: tokenHeader, json: "{}"), 405, "method_not_allowed"),
            ("wrong method on a collection", try await service.request("GET", "/v1/sessions"), 405, "method_not_allowed"),
            ("TRACE on a known path", try await service.request("TRACE", "/v1/session/rotate"), 405, "method_not_allowed"),
            ("OPTIONS on an admin path", try await service.request("OPTIONS", "/v1/users/x/sessions"), 405, "method_not_allowed"),
            ("user path over 256 bytes", try await service.request("GET", "/v1/users/\(String(repeating: "u", count: 257))/sessions"), 400, "invalid_request"),
        ]
        for (name, response, status, code) in cases {
            #expect(response.status == status, "\(name): status \(response.status) \(response.text)")
            #expect(response.errorCode == code, "\(name): \(response.text)")
            let error = response.jsonObject?["error"] as? [String: Any]
            #expect((error?["message"] as? String)?.isEmpty == false, "\(name) has a message")
            #expect(response.header("Content-Type") == "application/json", "\(name) is JSON")
        }
        #expect(try await service.request("PUT", "/v1/session", headers: tokenHeader, json: "{}").header("Allow") == "DELETE, GET, HEAD, PATCH")
        #expect(try await service.request("TRACE", "/healthz").header("Allow") == "GET, HEAD")
        // A timeout is any JSON number with a whole value, as JSON Schema's integer is.
        #expect(try await service.request("POST", "/v1/sessions", json: #"{"idle_timeout":60.0,"absolute_timeout":6e1}"#).status == 201)
        // None of that changed the session.
        let session = try #require(try await service.get(token).jsonObject)
        #expect(session["version"] as? Int == 1)
        #expect((session["data"] as? [String: Any])?["x"] as? Int == 1)
        #expect(try await service.request("GET", "/healthz").status == 200)
        await service.stop()
    }

    @Test func nestingDeeperThanSixtyFourLevelsIsRefusedNotACrash() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        let (token, _) = try await service.create()
        // The body object is level 1; its member's value adds 63 more levels: 64 in all.
        let deepest = "{\"a\":" + String(repeating: "[", count: 63) + String(repeating: "]", count: 63) + "}"
        #expect(try await service.patch(token, deepest).status == 200)
        let tooDeep = "{\"a\":" + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "}"
        let refused = try await service.patch(token, tooDeep)
        #expect(refused.status == 400)
        #expect(refused.errorCode == "invalid_json")
        let hostile = String(repeating: "[", count: 60_000)
        #expect(try await service.request("POST", "/v1/sessions", json: hostile).status == 400)
        #expect(try await service.get(token).status == 200)
        await service.stop()
    }
}
