import Foundation
import RedisClient
import RedisTestSupport
import SessionService
import Testing

extension ReplicationSuites {
/// sessiond on a real Redis Cluster (3 primaries, 1 replica each, `cluster-node-timeout 1000`,
/// `cluster-require-full-coverage no`) while it reshards, loses a primary, and grows.
@Suite(.serialized) struct ClusterTests {
    static func service(_ cluster: RedisClusterTopology, configure: (inout SessionServiceConfiguration) -> Void = { _ in }) async throws -> TestService {
        try await TestService.start(on: .cluster(cluster)) { configuration in
            configuration.redisTimeout = 1000
            configuration.failoverTimeout = 5000
            configure(&configuration)
        }
    }

    /// The slot of a session's key.
    static func slot(ofSession id: String) -> Int {
        HashSlot.of(Array("sd:s:{\(id)}".utf8))
    }

    static func id(ofSessionWith token: String, _ service: TestService) async throws -> String {
        try #require(try await service.get(token, query: "?touch=false").jsonObject?["id"] as? String)
    }

    static func metric(_ name: String, in text: String) -> Double {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }

    @Test func sessionsSpreadOverEveryPrimaryAndReadinessListsTheShards() async throws {
        let cluster = try await RedisClusterTopology.start()
        let service = try await Self.service(cluster)
        let ready = try await service.request("GET", "/readyz")
        #expect(ready.status == 200, "\(ready.text)")
        let shards = try #require((ready.jsonObject?["cluster"] as? [String: Any])?["nodes"] as? [[String: Any]])
        #expect(shards.count == 3)
        for shard in shards {
            #expect(shard["role"] as? String == "master")
            #expect((shard["replicas"] as? [String])?.count == 1)
        }
        #expect((ready.jsonObject?["cluster"] as? [String: Any])?["covered_slots"] as? Int == 16384)

        var perPrimary: [Int: Int] = [:]
        for index in 0..<300 {
            let (_, session) = try await service.create("{\"data\":{\"n\":\(index)}}")
            let id = try #require(session["id"] as? String)
            let primary = try await cluster.primary(ofSlot: Self.slot(ofSession: id))
            perPrimary[primary.port, default: 0] += 1
        }
        print("cluster: 300 sessions per primary: \(perPrimary.values.sorted())")
        #expect(perPrimary.count == 3)
        #expect(perPrimary.values.allSatisfy { $0 >= 60 }, "each primary holds at least 20%: \(perPrimary)")
        await service.stop()
    }
}
}
