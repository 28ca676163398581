import Foundation
import RedisClient
import RedisTestSupport
import Testing

/// sessiond against a primary with two replicas and three sentinels, all real processes on loopback.
@Suite(.serialized) struct FailoverTests {
    static func service(_ topology: SentinelTopology) async throws -> TestService {
        try await TestService.start(redis: topology.primary) { configuration in
            configuration.sentinels = topology.sentinels.map { RedisEndpoint(host: "127.0.0.1", port: $0.port) }
            configuration.redisURL = "redis://127.0.0.1:1"  // host and port unused in Sentinel mode
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
        let newPrimary = try #require(try await topology.primaryPortPerSentinels())
        #expect(newPrimary != topology.primary.port)
        let after = try #require(try await service.request("GET", "/readyz").jsonObject?["primary"] as? [String: Any])
        #expect(after["address"] as? String == "127.0.0.1:\(newPrimary)")
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
}
