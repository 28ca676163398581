import Foundation
import RedisClient
import RedisTestSupport
import Testing

extension ReplicationSuites {
/// SESSIOND_DURABILITY=replicated: a write is acknowledged only once a replica has it.
@Suite(.serialized) struct DurabilityTests {
    static func commandCalls(_ client: RedisClient, _ command: String) async throws -> Int {
        let stats = try await client.send("INFO", "commandstats").string ?? ""
        guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):") }),
            let calls = line.split(separator: ",").first?.split(separator: "=").last
        else { return 0 }
        return Int(calls) ?? 0
    }

    @Test func replicatedWritesAreOnTheReplicaWhenAcknowledgedAndShareTheirWaits() async throws {
        let primary = try await RedisServer.start(arguments: ["--repl-diskless-sync-delay", "0"])
        let replica = try await RedisServer.start(arguments: ["--replicaof", "127.0.0.1", String(primary.port)])
        let onPrimary = RedisClient.running(configuration: try RedisConfiguration(url: primary.url))
        let onReplica = RedisClient.running(configuration: try RedisConfiguration(url: replica.url))
        #expect(await eventually { try await replicasAreStreaming(onPrimary, replicas: 1) })
        let service = try await TestService.start(redis: primary) { configuration in
            configuration.durability = .replicated
            configuration.durabilityReplicas = 1
            configuration.durabilityTimeout = .milliseconds(500)
        }
        let ready = try await service.request("GET", "/readyz")
        #expect(ready.status == 200)
        #expect((ready.jsonObject?["primary"] as? [String: Any])?["connected_replicas"] as? Int == 1)

        // Right after a replica's sync Redis may hold its stream back for up to a second (until the
        // replica's first REPLCONF ACK), refusing replicated writes meanwhile: measure after that.
        #expect(await eventually { try await service.request("POST", "/v1/sessions", json: "{}").status == 201 })
        let waitsBefore = try await Self.commandCalls(onPrimary, "wait")
        let createdIDs = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<64 {
                group.addTask { try await service.create("{\"data\":{\"n\":\(index)}}").session["id"] as? String ?? "" }
            }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        let waits = try await Self.commandCalls(onPrimary, "wait") - waitsBefore
        print("replicated mode: 64 concurrent creates were acknowledged after \(waits) WAIT commands")
        #expect(waits >= 1 && waits < 64, "concurrent writes share their WAITs (\(waits) for 64 writes)")
        // Acknowledged means on the replica already: check there at once, without waiting.
        for id in createdIDs {
            #expect(try await onReplica.send("EXISTS", RedisArgument(sessionKey(id))) == .integer(1))
        }

        // Without a replica, a write is refused as not durable, never reported as done.
        await replica.kill()
        #expect(await eventually { (try await onPrimary.send("ROLE").array?[2].array?.count ?? 1) == 0 })
        let started = ContinuousClock.now
        let refused = try await service.request("POST", "/v1/sessions", json: "{}")
        #expect(refused.status == 503)
        #expect(refused.errorCode == "durability_timeout")
        #expect(refused.header("Retry-After") == "1")
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(try await service.request("GET", "/readyz").status == 503)
        await onPrimary.shutdown()
        await onReplica.shutdown()
        await service.stop()
        await primary.stop()
    }
}
}
