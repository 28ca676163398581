import Foundation
import RedisClient
import RedisTestSupport
import SessionService
import Synchronization
import Testing

extension ReplicationSuites {
/// A primary's host crashing while replication lags (a delaying proxy between the primary and its
/// replicas, killed with it) during a steady stream of session writes through sessiond.
///
/// The lag is 20 ms: what a loaded or distant replica shows. Through sessiond's HTTP path these
/// tests write ~1,000 sessions/s, so a crash puts ~20 acknowledged writes at risk; with 5 ms lag the
/// async runs measured here lost none in 14 runs (the window at risk is smaller than the lag by some
/// 10-15 ms that was not pinned down), so 5 ms could not demonstrate the risk.
@Suite(.serialized) struct HostCrashTests {
    /// One run: steady concurrent session writes, a host crash, the failover; returns what was
    /// acknowledged and how much of it is gone afterwards.
    /// - Parameter writers: concurrent writers; replicated writes each wait for the lagging replicas'
    ///   acknowledgement (two lags), so that mode needs more of them for a comparable write rate.
    static func crashDuringWrites(durability: SessionServiceConfiguration.Durability, writers writerCount: Int) async throws -> (acknowledged: Int, lost: Int) {
        let topology = try await SentinelTopology.start(replicationDelayMilliseconds: 20)
        defer { topology.stopAll() }
        let service = try await TestService.start(redis: topology.primary) { configuration in
            configuration.findPrimary(through: topology.sentinels)
            configuration.durability = durability
            configuration.durabilityReplicas = 1
            configuration.durabilityTimeout = 1000
        }
        let writing = Flag()
        let writers = (0..<writerCount).map { _ in
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

    /// The risk the replicated mode exists for: acknowledged, then gone with the host.
    @Test func asyncModeLosesAcknowledgedWritesWhenTheHostCrashes() async throws {
        var acknowledged = 0
        var lostPerRun: [Int] = []
        for _ in 0..<3 {
            let run = try await Self.crashDuringWrites(durability: .async, writers: 16)
            acknowledged += run.acknowledged
            lostPerRun.append(run.lost)
        }
        print("host crash, async mode: \(lostPerRun.reduce(0, +)) of \(acknowledged) acknowledged writes lost over 3 runs \(lostPerRun)")
        #expect(lostPerRun.reduce(0, +) > 0, "a crash with 20 ms of replication lag loses acknowledged async writes")
    }

    @Test func replicatedModeLosesNoAcknowledgedWriteWhenTheHostCrashes() async throws {
        var acknowledged = 0
        var lost = 0
        for _ in 0..<3 {
            let run = try await Self.crashDuringWrites(durability: .replicated, writers: 64)
            acknowledged += run.acknowledged
            lost += run.lost
        }
        print("host crash, replicated mode: \(lost) of \(acknowledged) acknowledged writes lost over 3 runs")
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
