import Foundation
import RedisClient
import RedisTestSupport
import SessionService
import Synchronization
import Testing

/// A primary's host crashing while replication lags (a 5 ms delaying proxy between the primary and
/// its replicas, killed with it) during a steady stream of session writes through sessiond.
extension ReplicationSuites {
@Suite(.serialized) struct HostCrashTests {
    /// One run: steady concurrent session writes, a host crash, the failover; returns what was
    /// acknowledged and how much of it is gone afterwards.
    static func crashDuringWrites(durability: SessionServiceConfiguration.Durability) async throws -> (acknowledged: Int, lost: Int) {
        let topology = try await SentinelTopology.start(replicationDelayMilliseconds: 5)
        defer { topology.stopAll() }
        let service = try await TestService.start(redis: topology.primary) { configuration in
            configuration.sentinels = topology.sentinels.map { RedisEndpoint(host: "127.0.0.1", port: $0.port) }
            configuration.redisURL = "redis://127.0.0.1:1"
            configuration.durability = durability
            configuration.durabilityReplicas = 1
            configuration.durabilityTimeout = 1000
        }
        let writing = Flag()
        let writers = (0..<16).map { _ in
            Task { () -> [String] in
                var tokens: [String] = []
                // Through the crash and the failover: writes acknowledged on either side must survive.
                while writing.isSet {
                    guard let response = try? await service.request("POST", "/v1/sessions", json: #"{"data":{"w":1}}"#) else { continue }
                    if response.status == 201, let token = response.jsonObject?["token"] as? String { tokens.append(token) }
                }
                return tokens
            }
        }
        // Crash once writes are flowing steadily.
        #expect(await eventually { try await service.request("GET", "/readyz").status == 200 })
        try await Task.sleep(for: .milliseconds(1000))  // a fixed stretch of writing before the crash
        topology.crashPrimaryHost()
        #expect(await eventually(timeout: .seconds(20)) { try await topology.primaryPortPerSentinels() != topology.primary.port })
        writing.clear()
        var tokens: [String] = []
        for writer in writers { tokens += await writer.value }
        // Wait for the failover, then look for every acknowledged session.
        #expect(await eventually(timeout: .seconds(20)) { try await service.request("GET", "/readyz").status == 200 })
        var lost = 0
        var statuses: [Int: Int] = [:]
        let verifyBy = ContinuousClock.now + .seconds(60)
        for token in tokens where ContinuousClock.now < verifyBy {
            let status = try await service.get(token, query: "?touch=false").status
            statuses[status, default: 0] += 1
            if status == 404 { lost += 1 }
        }
        #expect(statuses.values.reduce(0, +) == tokens.count, "every acknowledged session was checked within 60 s")
        #expect(statuses.keys.allSatisfy { $0 == 200 || $0 == 404 }, "every acknowledged session is either there or lost: \(statuses)")
        await service.stop()
        return (tokens.count, lost)
    }

    @Test func replicatedModeLosesNoAcknowledgedWriteWhenTheHostCrashes() async throws {
        var acknowledged = 0
        var lost = 0
        for _ in 0..<2 {
            let run = try await Self.crashDuringWrites(durability: .replicated)
            acknowledged += run.acknowledged
            lost += run.lost
        }
        print("host crash, replicated mode: \(lost) of \(acknowledged) acknowledged writes lost over 2 runs")
        #expect(acknowledged >= 1000, "enough writes to mean something (\(acknowledged))")
        #expect(lost == 0)
    }
}
}

/// A stop signal shared by concurrent writer tasks.
final class Flag: Sendable {
    private let value = Atomic(true)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func clear() { value.store(false, ordering: .relaxed) }
}
