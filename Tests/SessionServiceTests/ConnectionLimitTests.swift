import Foundation
import RedisTestSupport
import SessionService
import Testing

/// Connections and file descriptors running out: sessiond stops accepting (new connections wait
/// in the listening socket's backlog), says so once, counts it, keeps serving the connections it
/// has, and accepts again once one closes. Against a real sessiond process started with a low
/// `ulimit -n`, and an in-process one with `SESSIOND_MAX_CONNECTIONS`.
@Suite struct ConnectionLimitTests {
    static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/sessiond").path

    /// The CPU seconds (user + system) process `pid` has used.
    static func cpuSeconds(_ pid: pid_t) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
        return (Double(fields[11])! + Double(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The value of a metric without labels in a Prometheus text answer.
    static func counter(_ name: String, in text: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
    }

    static func healthz(on connection: RawTCPConnection) async throws -> Bool {
        let before = connection.text.count
        try await connection.send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        return await eventually { connection.text.dropFirst(before).contains(#"{"status":"ok"}"#) }
    }

    @Test func withFewDescriptorsSessiondStopsAcceptingSaysSoOnceAndKeepsServing() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build sessiond first (swift build)")
        let redis = try await RedisServer.start()
        // 64 descriptors (soft and hard): sessiond keeps connections to half of them, 32.
        let sessiond = try await RedisServer.startCommand { port, log in
            ["sh", "-c", #"ulimit -n 64 && exec "$0" "$@" >"$LOG" 2>&1"#, Self.binary, "--port", String(port), "--redis-url", redis.url]
                .map { $0.replacingOccurrences(of: "$LOG", with: log) }
        }
        func log() -> String { (try? String(contentsOf: sessiond.logFile, encoding: .utf8)) ?? "" }
        #expect(await eventually { log().contains("max_connections=32") && log().contains("descriptor_limit=64") }, "\(log())")

        // Twice the limit: the first 32 are taken, the rest wait in the backlog.
        var held: [RawTCPConnection] = []
        for _ in 0..<64 { held.append(try await RawTCPConnection.connect(port: sessiond.port)) }
        #expect(await eventually { log().contains("connection limit reached") }, "\(log())")
        #expect(try await Self.healthz(on: held[0]), "a connection already open is served")

        // Waiting for a connection to close, it does nothing: no busy loop on accept().
        let cpuBefore = try Self.cpuSeconds(sessiond.pid)
        let windowStart = ContinuousClock.now
        #expect(try await Self.healthz(on: held[1]))
        try await Task.sleep(for: .seconds(1))  // the window the CPU is measured over, not a wait for a condition
        let cpu = try Self.cpuSeconds(sessiond.pid) - cpuBefore
        let window = ContinuousClock.now - windowStart
        print("at the connection limit: \(cpu) s of CPU in \(window)")
        #expect(cpu < 0.25, "sessiond used \(cpu) s of CPU in \(window) while waiting at its connection limit")
        #expect(log().components(separatedBy: "connection limit reached").count == 2, "said once: \(log())")

        for connection in held { await connection.close() }
        let fresh = try await RawTCPConnection.connect(port: sessiond.port)
        #expect(try await Self.healthz(on: fresh), "accepting again once connections closed")
        try await fresh.send("GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        // Once per time the limit was reached: closing the first 32 let the waiting ones in, which
        // may have reached it again.
        #expect(await eventually { Self.counter("sessiond_http_connection_limit_reached_total", in: fresh.text).map { $0 >= 1 } ?? false }, "\(fresh.text.suffix(2000))")
        #expect(log().contains("below the connection limit again"))
        await fresh.close()
        await sessiond.stop()
    }

    @Test func atMaxConnectionsANewConnectionWaitsUntilOneCloses() async throws {
        let redis = try await RedisServer.start()
        let logs = LogCapture()
        let service = try await TestService.start(redis: redis, logs: logs) { $0.maxConnections = 3 }
        var open: [RawTCPConnection] = []
        for _ in 0..<3 {
            let connection = try await RawTCPConnection.connect(port: service.port)
            #expect(try await Self.healthz(on: connection))
            open.append(connection)
        }
        let waiting = try await RawTCPConnection.connect(port: service.port)
        try await waiting.send("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        #expect(try await Self.healthz(on: open[2]), "the open ones are still served")
        #expect(waiting.text.isEmpty, "not accepted while three are open")
        #expect(logs.all.filter { $0.contains("connection limit reached") }.count == 1, "said once: \(logs.all)")
        await open[0].close()
        #expect(await eventually { waiting.text.contains(#"{"status":"ok"}"#) }, "accepted once one closed")
        for connection in open.dropFirst() { await connection.close() }
        await waiting.close()
        await service.stop()
    }
}
