import Foundation
import RedisTestSupport
import Testing

@testable import SessionService

/// What operators see: which instance answered, and Prometheus metrics that never carry a token.
@Suite struct ObservabilityTests {
    /// Start-up names where sessions are kept and the limits in force; a stop is logged in order:
    /// the HTTP server first, then Redis.
    @Test func startAndStopAreLogged() async throws {
        let redis = try await RedisServer.start()
        let logs = LogCapture()
        let service = try await TestService.start(redis: redis, logs: logs)
        #expect(logs.all.contains { $0.contains("sessiond listening") && $0.contains("redis=127.0.0.1:\(redis.port)") }, "\(logs.all)")
        #expect(logs.all.contains { $0.contains("file descriptors and connections") && $0.contains("max_connections=") }, "\(logs.all)")
        await service.stop()
        let messages = logs.all
        let closing = try #require(messages.firstIndex { $0.contains("closing the Redis connections") }, "\(messages)")
        let stopped = try #require(messages.firstIndex { $0.contains("sessiond stopped") }, "\(messages)")
        #expect(closing < stopped)
    }

    @Test func everyResponseNamesTheInstanceThatServedIt() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis) { $0.instance = "sessiond-7" }
        let (token, _) = try await service.create()
        let responses = [
            try await service.get(token),  // 200
            try await service.get("sds_" + String(repeating: "A", count: 64)),  // 404 from the store
            try await service.request("GET", "/no/such/route"),  // 404 from the router
            try await service.request("POST", "/v1/sessions", json: "{"),  // 400
            try await service.request("GET", "/healthz"),
        ]
        for response in responses {
            #expect(response.header("X-Sessiond-Instance") == "sessiond-7", "status \(response.status)")
        }
        await service.stop()
    }

    @Test func metricsCountRequestsByRouteAndTimeRedisCommands() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        let (token, _) = try await service.create(#"{"data":{"a":1}}"#)
        for _ in 0..<3 { #expect(try await service.get(token).status == 200) }
        #expect(try await service.get("sds_" + String(repeating: "A", count: 64)).status == 404)

        let response = try await service.request("GET", "/metrics")
        #expect(response.status == 200)
        #expect(response.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = response.text
        #expect(text.contains(#"sessiond_http_requests_total{method="POST",route="/v1/sessions",status="201"} 1"#))
        #expect(text.contains(#"sessiond_http_requests_total{method="GET",route="/v1/session",status="200"} 3"#))
        #expect(text.contains(#"sessiond_http_requests_total{method="GET",route="/v1/session",status="404"} 1"#))
        #expect(text.contains(#"sessiond_http_request_duration_seconds_bucket{method="GET",route="/v1/session",status="200",le="+Inf"} 3"#))
        // Reads are plain reads: one HGETALL each, no function; a token of no session is looked
        // for in both storage layouts.
        #expect(text.contains(#"redis_command_duration_seconds_count{command="HGETALL"} 5"#))
        #expect(text.contains("redis_command_duration_seconds_count{command=\"FCALL \(SessionFunctions.functionPrefix)create\"} 1"))
        #expect(!text.contains("FCALL \(SessionFunctions.functionPrefix)touch"), "no read came within the touch interval of the last slide")
        #expect(text.contains("redis_primary{address=\"127.0.0.1:\(redis.port)\"} 1.0"))
        #expect(text.contains("redis_primary_changes_total 0"))
        #expect(!text.contains(token), "a token never reaches the metrics")
        await service.stop()
    }

    @Test func redisErrorsAreCountedByCommandAndCode() async throws {
        let redis = try await RedisServer.start()
        // The default Redis deadline: a 500 ms one failed the create itself on a loaded CI machine
        // (the first command waits for the connection and its function load), and once Redis is
        // killed the read fails at once whatever the deadline.
        let service = try await TestService.start(redis: redis)
        let (token, _) = try await service.create()
        await redis.kill()
        #expect(try await service.get(token).status == 503)
        let text = try await service.request("GET", "/metrics").text
        let errorLines = text.split(separator: "\n").filter { $0.hasPrefix("redis_command_errors_total{command=\"HGETALL\",code=\"connection_") }
        #expect(!errorLines.isEmpty, "the failed read is counted with its code: \(text.split(separator: "\n").filter { $0.hasPrefix("redis_command_errors") })")
        await service.stop()
    }

    /// A Redis that refuses writes (here a primary with `min-replicas-to-write` and no replica:
    /// `NOREPLICAS`; a replica's `READONLY` counts the same) is told apart from a command's own
    /// error, so that an alert on a read-only Redis (deploy/prometheus) can fire on it alone.
    @Test func writesRefusedByARedisThatTakesNoWritesAreCountedAsReadOnly() async throws {
        let redis = try await RedisServer.start(arguments: ["--min-replicas-to-write", "1"])
        let service = try await TestService.start(redis: redis)
        #expect(try await service.request("POST", "/v1/sessions", json: "{}").status == 503)
        let errors = try await service.request("GET", "/metrics").text.split(separator: "\n").filter { $0.hasPrefix("redis_command_errors_total") }
        #expect(errors.contains { $0.contains(#"code="read_only""#) }, "\(errors)")
        #expect(!errors.contains { $0.contains(#"code="server_error""#) }, "\(errors)")
        await service.stop()
    }
}
