import Foundation
import RedisTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM drains before it stops: `/readyz` answers 503 `draining` at once, every other request is
/// still served but closes its connection, new connections are still accepted until the delay is
/// over, and then sessiond exits 0. A real sessiond process, signalled by its PID.
@Suite struct DrainTests {
    static func answer(to request: String, on connection: RawTCPConnection) async throws -> String {
        let before = connection.text.count
        try await connection.send(request)
        var answer = ""
        _ = await eventually {
            answer = String(connection.text.dropFirst(before))
            guard let end = answer.range(of: "\r\n\r\n") else { return false }
            let length = answer[..<end.lowerBound].split(separator: "\r\n")
                .first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            return answer[end.upperBound...].utf8.count >= length
        }
        return answer
    }

    static let healthz = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"

    @Test func sigtermDrainsThenStopsAndExitsZero() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: ConnectionLimitTests.binary), "build sessiond first (swift build)")
        let redis = try await RedisServer.start()
        // Long enough for the checks below on a slow machine; the test waits it out.
        let delay = 10
        let sessiond = try await RedisServer.startCommand { port, log in
            ["sh", "-c", #"exec "$0" "$@" >"$LOG" 2>&1"#, ConnectionLimitTests.binary, "--port", String(port), "--redis-url", redis.url,
             "--shutdown-delay", String(delay)]
                .map { $0.replacingOccurrences(of: "$LOG", with: log) }
        }
        func log() -> String { (try? String(contentsOf: sessiond.logFile, encoding: .utf8)) ?? "" }
        var connections: [RawTCPConnection] = []
        for _ in 0..<3 {
            let connection = try await RawTCPConnection.connect(port: sessiond.port)
            let answer = try await Self.answer(to: Self.healthz, on: connection)
            #expect(answer.hasPrefix("HTTP/1.1 200") && !answer.lowercased().contains("connection: close"), "\(answer)")
            connections.append(connection)
        }

        let signalled = ContinuousClock.now
        kill(sessiond.pid, SIGTERM)
        #expect(await eventually { log().contains("draining") }, "\(log())")
        let ready = try await Self.answer(to: "GET /readyz HTTP/1.1\r\nHost: test\r\n\r\n", on: connections[0])
        #expect(ready.hasPrefix("HTTP/1.1 503") && ready.contains(#""code":"draining""#), "\(ready)")
        // Every other request is still served, and its answer closes the keep-alive connection.
        for connection in connections {
            if connection !== connections[0] {
                let answer = try await Self.answer(to: Self.healthz, on: connection)
                #expect(answer.hasPrefix("HTTP/1.1 200") && answer.lowercased().contains("connection: close"), "\(answer)")
            }
            #expect(await eventually { connection.isClosed }, "closed after its answer")
        }
        let late = try await RawTCPConnection.connect(port: sessiond.port)
        let lateAnswer = try await Self.answer(to: Self.healthz, on: late)
        #expect(lateAnswer.hasPrefix("HTTP/1.1 200"), "still accepting while draining: \(lateAnswer)")

        let status = await sessiond.exitStatus(after: 0, timeout: .seconds(60))  // no second signal: it stops by itself
        #expect(status == 0, "\(log())")
        #expect(ContinuousClock.now - signalled >= .seconds(delay), "it drained for the whole delay")
        #expect(log().contains("sessiond stopped"))
    }
}
