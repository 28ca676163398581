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
            configuration.redisTimeout = .milliseconds(1000)
            configuration.failoverTimeout = .milliseconds(5000)
        }
    }

    @Test func killingThePrimaryDuringWritesCostsSecondsAndNoSession() async throws {
        let topology = try await SentinelTopology.start()
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
        let direct = RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: topology.primary.port))
        #expect(try await direct.send("WAIT", "2", "1000") == .integer(2))
        await direct.shutdown()

        // A steady stream of creates and patches (16 writers each); kill -9 the primary in the middle.
        let running = Flag()
        let load = Task { try await WriteLoad(service: service, creators: 16, patchers: 16).run(while: running) }
        #expect(await eventually { try await topology.primaryPortPerSentinels() == topology.primary.port })
        try await Task.sleep(for: .milliseconds(500))  // a stretch of writing before the kill, not a wait for a condition
        let killedAt = ContinuousClock.now
        await topology.primary.kill()
        // Write on until writes sent after the kill are acknowledged, and a second longer.
        #expect(await eventually(timeout: .seconds(15)) { try await service.request("POST", "/v1/sessions", json: "{}").status == 201 })
        try await Task.sleep(for: .seconds(1))  // a stretch of writing after the failover
        running.clear()
        let outcome = try await load.value
        let resumed = try #require(outcome.firstAcknowledgement(sentAfter: killedAt), "writes never succeeded again")
        let verdict = try await WriteLoad.verify(outcome, through: service)
        print("failover (kill -9): writes sent after the kill acknowledged \(resumed) after it; \(outcome.refused.count) requests refused; \(verdict)")
        #expect(outcome.refused.isEmpty, "no caller saw the failover: \(outcome.refused.prefix(5))")
        #expect(resumed < .seconds(5), "writes succeeded again \(resumed) after the kill")
        #expect(verdict.lost == 0 && verdict.doubled == 0 && verdict.unreadable.isEmpty, "\(verdict)")
        #expect(outcome.patchers.allSatisfy { $0.acknowledged > 0 })
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
        // Usually one change; two when the sentinels' first election stalls on a loaded machine and a
        // second promotes the other replica (sessiond follows both, and counts both).
        let primaryLines = metrics.split(separator: "\n").filter { $0.hasPrefix("redis_primary") }
        let changes = primaryLines.first { $0.hasPrefix("redis_primary_changes_total ") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        #expect((1...2).contains(changes), "\(primaryLines)")
        #expect(metrics.contains("redis_primary{address=\"127.0.0.1:\(newPrimary)\"} 1.0\n"))
        #expect(metrics.contains("redis_primary{address=\"127.0.0.1:\(topology.primary.port)\"} 0.0\n"))
        #expect(primaryLines.filter { $0.hasSuffix(" 1.0") }.count == 1, "only the primary in use is 1: \(primaryLines)")
        await service.stop()
    }

    @Test func aSentinelThatAcceptsButNeverAnswersSlowsNoRequestAndFailoverIsStillFollowed() async throws {
        let topology = try await SentinelTopology.start()
        let silent = try await SilentServer.start()
        let service = try await TestService.start(redis: topology.primary) { configuration in
            configuration.findPrimary(through: topology.sentinels)
            // Listed first, so every lookup asks it first.
            configuration.sentinels.insert(RedisEndpoint(host: "127.0.0.1", port: silent.port), at: 0)
            configuration.redisTimeout = .milliseconds(1000)
            configuration.failoverTimeout = .milliseconds(5000)
        }
        let primary = RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: topology.primary.port))
        var slowest = Duration.zero
        var statuses: [Int: Int] = [:]
        for round in 0..<5 {
            if round > 0 {
                // Each round starts with broken connections: sessiond must look the primary up again.
                _ = try await primary.send("CLIENT", "KILL", "TYPE", "normal")
            }
            for _ in 0..<10 {
                let started = ContinuousClock.now
                let response = try await service.request("POST", "/v1/sessions", json: "{}")
                slowest = max(slowest, .now - started)
                statuses[response.status, default: 0] += 1
            }
        }
        await primary.shutdown()
        print("with a silent sentinel listed first: slowest of 50 requests \(slowest), statuses \(statuses)")
        #expect(statuses == [201: 50])
        #expect(slowest < .seconds(1), "the slowest request took \(slowest)")

        // A failover is still followed within 5 s, and no request sees it.
        let running = Flag()
        let load = Task { try await WriteLoad(service: service, creators: 4, patchers: 4).run(while: running) }
        try await Task.sleep(for: .milliseconds(300))  // a stretch of writing before the kill
        let killedAt = ContinuousClock.now
        await topology.primary.kill()
        #expect(await eventually(timeout: .seconds(15)) { try await service.request("POST", "/v1/sessions", json: "{}").status == 201 })
        running.clear()
        let outcome = try await load.value
        let resumed = try #require(outcome.firstAcknowledgement(sentAfter: killedAt), "writes never succeeded again")
        print("with a silent sentinel listed first: writes resumed \(resumed) after kill -9 of the primary")
        #expect(resumed < .seconds(5))
        #expect(outcome.refused.isEmpty, "\(outcome.refused.prefix(5))")
        await service.stop()
    }

    @Test func withEverySentinelStoppedTheLastConfirmedPrimaryKeepsServing() async throws {
        let topology = try await SentinelTopology.start()
        let service = try await Self.service(topology)
        let (token, _) = try await service.create(#"{"data":{"a":1}}"#)
        for sentinel in topology.sentinels { await sentinel.kill() }
        // Break sessiond's connections, so that it must look the primary up again: no sentinel
        // answers, and only the last primary a connection confirmed is left.
        let primary = RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: topology.primary.port))
        #expect(try await primary.send("CLIENT", "KILL", "TYPE", "normal").integer ?? 0 >= 1)
        await primary.shutdown()
        #expect(await eventually {
            let ready = try await service.request("GET", "/readyz").jsonObject?["primary"] as? [String: Any]
            return (ready?["found_by"] as? String)?.hasPrefix("last confirmed primary") == true
        })
        for index in 0..<20 {
            #expect(try await service.patch(token, "{\"a\":\(index)}").status == 200)
        }
        #expect(try await service.request("POST", "/v1/sessions", json: "{}").status == 201)
        #expect(try await service.request("GET", "/readyz").status == 200)
        await service.stop()
    }

    @Test func aManualFailoverLosesNoAcknowledgedWriteAndRefusesNone() async throws {
        let topology = try await SentinelTopology.start()
        let service = try await Self.service(topology)
        #expect(await eventually { try await service.request("GET", "/readyz").status == 200 })
        let running = Flag()
        let load = Task { try await WriteLoad(service: service, creators: 8, patchers: 8).run(while: running) }
        try await Task.sleep(for: .milliseconds(500))  // a stretch of writing before the failover
        // The old primary stays up and writable for a while after this: sessiond must leave it at once.
        let sentinel = RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: topology.sentinels[0].port))
        #expect(try await sentinel.send("SENTINEL", "FAILOVER", "mymaster") == .simpleString("OK"))
        await sentinel.shutdown()
        #expect(await eventually(timeout: .seconds(15)) { try await topology.primaryPortPerSentinels() != topology.primary.port })
        try await Task.sleep(for: .seconds(2))  // a stretch of writing after the failover
        running.clear()
        let outcome = try await load.value
        let verdict = try await WriteLoad.verify(outcome, through: service)
        print("manual failover: \(outcome.refused.count) requests refused; \(verdict)")
        // Writes in flight on the old primary when it is fenced are retried on the new one, where
        // their write ids tell whether they had already been applied.
        #expect(outcome.refused.isEmpty, "\(outcome.refused.prefix(5))")
        #expect(verdict.lost == 0 && verdict.doubled == 0 && verdict.unreadable.isEmpty, "\(verdict)")
        await service.stop()
    }

    @Test func theOldPrimaryRestartedAsAReplicaGetsNoWrites() async throws {
        let topology = try await SentinelTopology.start()
        let service = try await Self.service(topology)
        _ = try await service.create()
        await topology.primary.kill()
        #expect(await eventually(timeout: .seconds(15)) { try await topology.primaryPortPerSentinels() != topology.primary.port })
        let oldPrimary = try await topology.primary.restart()  // comes back as an empty primary until Sentinel demotes it
        let running = Flag()
        let load = Task { try await WriteLoad(service: service, creators: 4, patchers: 4).run(while: running) }
        try await Task.sleep(for: .seconds(4))  // a stretch of writing while Sentinel demotes the old primary
        running.clear()
        let outcome = try await load.value
        #expect(outcome.refused.isEmpty, "no READONLY (or anything else) reached a caller: \(outcome.refused.prefix(5))")
        let old = RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: oldPrimary.port))
        #expect(await eventually(timeout: .seconds(15)) { try await old.send("ROLE").array?.first?.string == "slave" },
                "Sentinel turned the old primary into a replica")
        await old.shutdown()
        let verdict = try await WriteLoad.verify(outcome, through: service)
        #expect(verdict.lost == 0 && verdict.doubled == 0 && verdict.unreadable.isEmpty, "\(verdict)")
        await service.stop()
    }

    @Test func redisEntirelyDownAnswers503WithinTheDeadlineAndRecovers() async throws {
        let topology = try await SentinelTopology.start()
        let service = try await TestService.start(redis: topology.primary) { configuration in
            configuration.findPrimary(through: topology.sentinels)
            configuration.redisTimeout = .milliseconds(500)
            configuration.failoverTimeout = .milliseconds(2000)
        }
        #expect(try await service.request("POST", "/v1/sessions", json: "{}").status == 201)
        for server in topology.servers { await server.kill() }
        let started = ContinuousClock.now
        let refused = try await service.request("POST", "/v1/sessions", json: "{}")
        let waited = ContinuousClock.now - started
        #expect(refused.status == 503 && refused.errorCode == "storage_unavailable" && refused.header("Retry-After") == "1")
        #expect(waited < .seconds(4), "answered after \(waited): the failover deadline bounds the wait")
        let restarted = try await topology.primary.restart()
        #expect(await eventually(timeout: .seconds(15)) { try await service.request("POST", "/v1/sessions", json: "{}").status == 201 })
        await service.stop()
        await restarted.stop()
    }
}
}
