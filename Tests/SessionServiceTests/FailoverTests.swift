import Foundation
import RedisClient
import RedisTestSupport
import Testing

extension ReplicationSuites {
/// sessiond against a primary with two replicas and three sentinels, all real processes on loopback.
@Suite(.serialized) struct FailoverTests {
    static func service(_ topology: SentinelTopology) async throws -> TestService {
        try await TestService.start(redis: topology.primary) { configuration in
            configuration.findPrimary(through: topology.sentinels)
            configuration.redisTimeout = 1000
            configuration.failoverTimeout = 5000
        }
    }

    @Test func killingThePrimaryDuringWritesCostsSecondsAndNoSession() async throws {
        let topology = try await SentinelTopology.start()
        defer { topology.stopAll() }
        let service = try await Self.service(topology)
        let ready = try #require(try await service.request("GET", "/readyz").jsonObject?["primary"] as? [String: Any])
        #expect(ready["address"] as? String == "127.0.0.1:\(topology.primary.port)")
        #expect(ready["role"] as? String == "master")
        #expect(ready["connected_replicas"] as? Int == 2)
        #expect((ready["found_by"] as? String)?.hasPrefix("sentinel") == true)

        var written: [String] = []
        for index in 0..<50 {
            written.append(try await service.create("{\"data\":{\"n\":\(index)}}").token)
        }
        // Let the replicas catch up so the test measures failover, not replication lag.
        let direct = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: topology.primary.port))
        #expect(try await direct.send("WAIT", "2", "1000") == .integer(2))
        await direct.shutdown()

        // A steady stream of writes; kill -9 the primary in the middle of it.
        let killedAt = ContinuousClock.now
        topology.primary.kill()
        var firstSuccessAfterKill: ContinuousClock.Instant?
        var failures = 0
        while ContinuousClock.now - killedAt < .seconds(15), firstSuccessAfterKill == nil {
            let response = try await service.request("POST", "/v1/sessions", json: #"{"data":{"after":"kill"}}"#)
            if response.status == 201 {
                firstSuccessAfterKill = .now
            } else {
                #expect(response.errorCode == "storage_unavailable", "\(response.status) \(response.text)")
                failures += 1
            }
        }
        let recovered = try #require(firstSuccessAfterKill, "writes never succeeded again")
        let outage = recovered - killedAt
        print("failover: first accepted write \(outage) after kill -9 of the primary; \(failures) requests answered 503 meanwhile")
        #expect(outage < .seconds(5), "writes succeeded again \(outage) after the kill")
        for token in written {
            #expect(try await service.get(token).status == 200, "a session written before the kill is still there")
        }
        // sessiond follows the leading sentinel's announcements, so it may be ahead of the others.
        #expect(await eventually { try await topology.primaryPortPerSentinels() != topology.primary.port })
        let newPrimary = try #require(try await topology.primaryPortPerSentinels())
        let after = try #require(try await service.request("GET", "/readyz").jsonObject?["primary"] as? [String: Any])
        #expect(after["address"] as? String == "127.0.0.1:\(newPrimary)")
        // The metrics saw the failover and name the primary now in use.
        let metrics = try await service.request("GET", "/metrics").text
        #expect(metrics.contains("redis_primary_changes_total 1\n"), "\(metrics.split(separator: "\n").filter { $0.hasPrefix("redis_primary") })")
        #expect(metrics.contains("redis_primary{address=\"127.0.0.1:\(newPrimary)\"} 1.0\n"))
        #expect(metrics.contains("redis_primary{address=\"127.0.0.1:\(topology.primary.port)\"} 0.0\n"))
        await service.stop()
    }

    @Test func withEverySentinelStoppedTheLastConfirmedPrimaryKeepsServing() async throws {
        let topology = try await SentinelTopology.start()
        defer { topology.stopAll() }
        let service = try await Self.service(topology)
        let (token, _) = try await service.create(#"{"data":{"a":1}}"#)
        for sentinel in topology.sentinels { sentinel.kill() }
        for index in 0..<20 {
            #expect(try await service.patch(token, "{\"a\":\(index)}").status == 200)
        }
        #expect(try await service.request("POST", "/v1/sessions", json: "{}").status == 201)
        #expect(try await service.request("GET", "/readyz").status == 200)
        await service.stop()
    }

    /// Writes sessions until `stop` says so; returns the acknowledged tokens and every other status.
    static func writeSteadily(_ service: TestService, until stop: @escaping @Sendable () -> Bool) async throws -> (acknowledged: [String], refused: [String]) {
        var acknowledged: [String] = []
        var refused: [String] = []
        while !stop() {
            let response = try await service.request("POST", "/v1/sessions", json: #"{"data":{"step":1}}"#)
            if response.status == 201, let token = response.jsonObject?["token"] as? String {
                acknowledged.append(token)
            } else {
                refused.append("\(response.status) \(response.errorCode ?? response.text)")
                print("refused during a failover test: \(response.status) \(response.text)")  // the message says why
            }
        }
        return (acknowledged, refused)
    }

    @Test func aManualFailoverLosesNoAcknowledgedWrite() async throws {
        let topology = try await SentinelTopology.start()
        defer { topology.stopAll() }
        let service = try await Self.service(topology)
        let started = ContinuousClock.now
        let writer = Task { try await Self.writeSteadily(service) { ContinuousClock.now - started > .seconds(8) } }
        #expect(await eventually { try await service.request("GET", "/readyz").status == 200 })
        // The old primary stays up and writable for a while after this: sessiond must leave it at once.
        let sentinel = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: topology.sentinels[0].port))
        #expect(try await sentinel.send("SENTINEL", "FAILOVER", "mymaster") == .simpleString("OK"))
        await sentinel.shutdown()
        let (acknowledged, refused) = try await writer.value
        print("manual failover: \(acknowledged.count) writes acknowledged, \(refused.count) refused: \(Set(refused))")
        #expect(try await topology.primaryPortPerSentinels() != topology.primary.port)
        // Writes in flight on the old primary when it is fenced may or may not have been applied:
        // they are answered 503 (never retried, never reported as done). Nothing else reaches a caller.
        #expect(refused.allSatisfy { $0 == "503 storage_unavailable" }, "\(Set(refused))")
        #expect(refused.count <= 16, "at most the writes in flight at the fence are refused (\(refused.count))")
        var lost = 0
        for token in acknowledged where try await service.get(token, query: "?touch=false").status != 200 { lost += 1 }
        #expect(lost == 0, "\(lost) of \(acknowledged.count) acknowledged writes were lost")
        await service.stop()
    }

    @Test func theOldPrimaryRestartedAsAReplicaGetsNoWrites() async throws {
        let topology = try await SentinelTopology.start()
        defer { topology.stopAll() }
        let service = try await Self.service(topology)
        _ = try await service.create()
        topology.primary.kill()
        #expect(await eventually(timeout: .seconds(15)) { try await topology.primaryPortPerSentinels() != topology.primary.port })
        let oldPrimary = try topology.primary.restart()  // comes back as an empty primary until Sentinel demotes it
        defer { oldPrimary.kill() }
        let started = ContinuousClock.now
        let (acknowledged, refused) = try await Self.writeSteadily(service) { ContinuousClock.now - started > .seconds(4) }
        #expect(refused.isEmpty, "no READONLY (or anything else) reached a caller: \(Set(refused))")
        let old = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: oldPrimary.port))
        #expect(await eventually(timeout: .seconds(15)) { try await old.send("ROLE").array?.first?.string == "slave" },
                "Sentinel turned the old primary into a replica")
        await old.shutdown()
        for token in acknowledged {
            #expect(try await service.get(token, query: "?touch=false").status == 200)
        }
        await service.stop()
    }

    @Test func redisEntirelyDownAnswers503WithinTheDeadlineAndRecovers() async throws {
        let topology = try await SentinelTopology.start()
        defer { topology.stopAll() }
        let service = try await TestService.start(redis: topology.primary) { configuration in
            configuration.findPrimary(through: topology.sentinels)
            configuration.redisTimeout = 500
            configuration.failoverTimeout = 2000
        }
        #expect(try await service.request("POST", "/v1/sessions", json: "{}").status == 201)
        for server in topology.servers { server.kill() }
        let started = ContinuousClock.now
        let refused = try await service.request("POST", "/v1/sessions", json: "{}")
        let waited = ContinuousClock.now - started
        #expect(refused.status == 503 && refused.errorCode == "storage_unavailable" && refused.header("Retry-After") == "1")
        #expect(waited < .seconds(4), "answered after \(waited): the failover deadline bounds the wait")
        let restarted = try topology.primary.restart()
        defer { restarted.kill() }
        #expect(await eventually(timeout: .seconds(15)) { try await service.request("POST", "/v1/sessions", json: "{}").status == 201 })
        await service.stop()
    }
}
}
