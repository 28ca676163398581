import Foundation
import RedisTestSupport
import Testing

/// How sessiond treats a connection, over real sockets: many requests on one keep-alive
/// connection (as load balancers and HTTP client pools send them), half-closing clients, idle and
/// busy connections, and clients that stop reading. Serialized: the client that floods the server
/// would otherwise stretch the pauses of the timeout test.
@Suite(.serialized) struct ConnectionTests {
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

    /// A body over the limit is 413 whether it declares its length or comes in chunks (which
    /// declare none until the end), on every route that takes a body; the connection goes on.
    @Test func aChunkedBodyOverTheLimitIs413LikeOneWithALength() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        let (token, _) = try await service.create()
        let oversized = "{\"a\":\"" + String(repeating: "x", count: 70_000) + "\"}"
        let chunked = stride(from: 0, to: oversized.utf8.count, by: 8192).map { start -> String in
            let chunk = String(oversized.utf8.dropFirst(start).prefix(8192))!
            return String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n"
        }.joined() + "0\r\n\r\n"
        let connection = try await RawTCPConnection.connect(port: service.port)
        for (method, path) in [("POST", "/v1/sessions"), ("PATCH", "/v1/session"), ("PUT", "/v1/session/data")] {
            try await connection.send(
                "\(method) \(path) HTTP/1.1\r\nHost: test\r\nX-Session-Token: \(token)\r\nContent-Type: application/json\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n" + chunked
            )
        }
        try await connection.send("GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        let text = try await connection.textUntilClosed()
        let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        #expect(statuses == ["413", "413", "413", "200"], "\(text.prefix(600))")
        #expect(text.components(separatedBy: #""code":"payload_too_large""#).count == 4)
        #expect(try await service.get(token).jsonObject?["version"] as? Int == 1, "nothing was written")
        await connection.close()
        await service.stop()
    }

    @Test func aRequestFollowedByAHalfCloseIsAnsweredThenTheConnectionCloses() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        let (token, _) = try await service.create(#"{"data":{"n":7}}"#)
        let connection = try await RawTCPConnection.connect(port: service.port)
        try await connection.send(
            "GET /v1/session HTTP/1.1\r\nHost: test\r\nX-Session-Token: \(token)\r\n\r\n"
                + "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
        )
        try await connection.shutdownOutput()
        let text = try await connection.textUntilClosed()
        let answers = text.components(separatedBy: "HTTP/1.1 ").dropFirst()
        #expect(answers.count == 2, "both requests answered before the close: \(text)")
        #expect(answers.first?.hasPrefix("200") == true && answers.first?.contains(#""n":7"#) == true)
        #expect(answers.last?.hasPrefix("200") == true && answers.last?.contains(#"{"status":"ok"}"#) == true)
        await service.stop()
    }

    @Test func everyV1AnswerIsMarkedNoStoreErrorsAnd204sIncluded() async throws {
        let redis = try await RedisServer.start()
        let key = String(repeating: "k", count: 24)
        let service = try await TestService.start(redis: redis) { $0.apiKeys = [key]; $0.maxBodyBytes = 256 }
        let auth = [("Authorization", "Bearer \(key)")]
        let (token, session) = try await service.create(#"{"user":"ann"}"#, headers: auth)
        let id = try #require(session["id"] as? String)
        let withToken = auth + [("X-Session-Token", token)]
        let answers: [(String, HTTPTestResponse, Int)] = [
            ("read", try await service.request("GET", "/v1/session", headers: withToken), 200),
            ("patch", try await service.request("PATCH", "/v1/session", headers: withToken, json: #"{"a":1}"#), 200),
            ("too large", try await service.request("PATCH", "/v1/session", headers: withToken, json: #"{"a":""# + String(repeating: "x", count: 300) + #""}"#), 413),
            ("no token", try await service.request("GET", "/v1/session", headers: auth), 400),
            ("unknown token", try await service.request("GET", "/v1/session", headers: auth + [("X-Session-Token", "nope")]), 404),
            ("no API key", try await service.request("GET", "/v1/session", headers: [("X-Session-Token", token)]), 401),
            ("wrong method", try await service.request("PUT", "/v1/session", headers: withToken, json: "{}"), 405),
            ("unknown path", try await service.request("GET", "/v1/nothing", headers: auth), 404),
            ("admin read", try await service.request("GET", "/v1/sessions/\(id)", headers: auth), 200),
            ("list", try await service.request("GET", "/v1/users/ann/sessions", headers: auth), 200),
            ("delete", try await service.request("DELETE", "/v1/session", headers: withToken), 204),
            ("admin revoke", try await service.request("DELETE", "/v1/sessions/\(id)", headers: auth), 204),
        ]
        for (name, response, status) in answers {
            #expect(response.status == status, "\(name): \(response.status) \(response.text)")
            #expect(response.header("Cache-Control") == "no-store", "\(name) is never cached")
        }
        #expect(try await service.request("GET", "/healthz").header("Cache-Control") == nil, "outside /v1 nothing is promised")
        await service.stop()
    }

    @Test func anIdleConnectionIsClosedAfterTheTimeoutAndABusyOneNever() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis) { $0.connectionIdleTimeout = .seconds(2) }
        let opened = ContinuousClock.now
        let idle = try await RawTCPConnection.connect(port: service.port)
        // In use every 250 ms, for longer than the timeout.
        let used = try await RawTCPConnection.connect(port: service.port)
        // A request in progress for longer than the timeout: its body comes two bytes at a time.
        let slow = try await RawTCPConnection.connect(port: service.port)
        let body = #"{"data":{"a":1}}"#
        try await slow.send("POST /v1/sessions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
        var bodySent = 0
        for round in 1...12 {
            try await used.send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            #expect(await eventually(timeout: .seconds(5)) { used.text.components(separatedBy: "HTTP/1.1 200").count - 1 == round })
            let byteCount = min(body.utf8.count - bodySent, 2)
            if byteCount > 0 {
                try await slow.send(String(body.dropFirst(bodySent).prefix(byteCount)))
                bodySent += byteCount
            }
            try await Task.sleep(for: .milliseconds(250))  // the client's own pace, not a wait for the server
        }
        #expect(idle.isClosed, "the idle connection was closed")
        #expect(!used.isClosed, "a connection in use stays open")
        // Answered, so never cut off while its body came in; once answered it is an idle
        // connection like any other, which a busy machine may leave idle past the timeout.
        #expect(await eventually(timeout: .seconds(5)) { slow.text.contains("HTTP/1.1 201") }, "the slow request is answered: \(slow.text)")
        #expect(!slow.text.lowercased().contains("connection: close"), "and not told to close")
        #expect(ContinuousClock.now - opened > .seconds(3), "the busy connections outlived the timeout")
        await service.stop()
    }

    @Test func aClientThatStopsReadingCannotMakeTheServerBufferWithoutBound() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        // Every answer is ~32 KiB, every request ~120 bytes: a server that went on answering
        // requests nobody reads would hold hundreds of MiB within a second.
        let (token, _) = try await service.create(#"{"data":{"big":""# + String(repeating: "x", count: 32 * 1024) + #""}}"#)
        let request = "GET /v1/session?touch=false HTTP/1.1\r\nHost: test\r\nX-Session-Token: \(token)\r\n\r\n"
        let reader = try await RawTCPConnection.connect(port: service.port, reads: false)
        let sent = try await reader.sendUntilStalled(request, stall: .seconds(1), limit: 64 << 20)
        let requestsSent = sent / request.utf8.count
        #expect(requestsSent >= 2_000, "enough requests reached the server to tell (\(requestsSent))")
        let metrics = try await service.request("GET", "/metrics").text
        let answeredLine = metrics.split(separator: "\n").first {
            $0.hasPrefix(#"sessiond_http_requests_total{method="GET",route="/v1/session",status="200"}"#)
        }
        let answered = answeredLine.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        // What the kernel buffers hold (4 MiB send buffer here) and one high watermark, not more.
        #expect(answered * 32 * 1024 < 16 << 20, "answered \(answered) of \(requestsSent) requests nobody read")
        #expect(try await service.request("GET", "/healthz").status == 200, "other connections are served meanwhile")
        await reader.close()
        await service.stop()
    }

    @Test func stoppingTheServerClosesTheConnectionsItHasOpen() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)  // idle timeout: the default minute
        let connection = try await RawTCPConnection.connect(port: service.port)
        try await connection.send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        #expect(await eventually { connection.text.contains("HTTP/1.1 200") })
        let stopped = ContinuousClock.now
        let stoppedInTime = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await service.stop()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(15))  // a deadline, not a wait for a condition
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        #expect(stoppedInTime, "the server stopped although a client kept its connection open")
        #expect(ContinuousClock.now - stopped < .seconds(15))
        #expect(await eventually(timeout: .seconds(5)) { connection.isClosed })
    }
}
