import Foundation
import RedisTestSupport
import Testing

/// Many requests on one keep-alive connection, as load balancers and HTTP client pools send them.
/// Some are answered on the event loop (`GET /healthz`, `GET` and `PATCH /v1/session`), the others
/// by Hummingbird's router; the answers must still come back one per request, in order.
@Suite struct ConnectionTests {
    @Test func pipelinedRequestsAreAnsweredInTheOrderTheyCame() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis) { $0.maxBodyBytes = 256 }
        let (token, _) = try await service.create(#"{"data":{"n":0}}"#)
        let session = [("X-Session-Token", token)]
        let oversized = #"{"big":""# + String(repeating: "x", count: 300) + #""}"#
        // All written at once, before any answer: each read must see the patches before it and no later one.
        var requests: [HTTPTestClient.Request] = []
        var expected: [Int] = []
        for round in 1...10 {
            requests += [
                .init("GET", "/v1/session", headers: session),
                .init("POST", "/v1/sessions", json: "{}"),
                .init("PATCH", "/v1/session", headers: session, json: "{\"n\":\(round)}"),
                .init("GET", "/v1/session", headers: [("X-Session-Token", "not-a-token")]),
                .init("PATCH", "/v1/session", headers: session, json: oversized),
                .init("GET", "/readyz"),
            ]
            expected += [200, 201, 200, 404, 413, 200]
        }
        requests.append(.init("GET", "/healthz"))
        expected.append(200)

        // The server closes after the last answer (Connection: close); until then every answer is read.
        let responses = try await HTTPTestClient.exchange(port: service.port, requests: requests)
        #expect(responses.map(\.status) == expected)
        guard responses.count == expected.count else { return }
        func n(_ index: Int) -> Int? { (responses[index].jsonObject?["data"] as? [String: Any])?["n"] as? Int }
        #expect((0..<10).map { n($0 * 6) } == Array(0..<10), "each read sees the patches before it")
        #expect((0..<10).map { n($0 * 6 + 2) } == Array(1...10), "each patch answers with its own write")
        #expect((0..<10).map { responses[$0 * 6 + 1].jsonObject?["token"] is String } == Array(repeating: true, count: 10))
        #expect(responses[4].errorCode == "payload_too_large")
        #expect(responses.last?.text == #"{"status":"ok"}"#)
        #expect(responses.last?.header("Connection") == "close")
        #expect(responses.allSatisfy { $0.header("X-Sessiond-Instance") == "test" && $0.header("Date") != nil })
        await service.stop()
    }
}
