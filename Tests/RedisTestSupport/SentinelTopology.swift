import Foundation
import RedisClient

/// A real replicated Redis on loopback: one primary, replicas following it, and sentinels watching
/// it (quorum 2, `down-after-milliseconds` 1000), started by a test and stopped by PID when the test
/// lets go of it (see ``RedisServer``).
public final class SentinelTopology: Sendable {
    public let masterName = "mymaster"
    public let primary: RedisServer
    public let replicas: [RedisServer]
    public let sentinels: [RedisServer]
    /// The delaying proxies replication goes through, when the topology was started with a delay.
    public let proxies: [RedisServer]

    private init(primary: RedisServer, replicas: [RedisServer], sentinels: [RedisServer], proxies: [RedisServer]) {
        self.primary = primary
        self.replicas = replicas
        self.sentinels = sentinels
        self.proxies = proxies
    }

    /// `127.0.0.1:<port>,...` of the sentinels, as SESSIOND_SENTINELS takes them.
    public var sentinelList: String {
        sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
    }

    /// Every process of the topology, for finding a server by port.
    public var servers: [RedisServer] { [primary] + replicas }

    /// Starts the topology and waits (bounded) until every sentinel sees every replica and the
    /// other sentinels, so that a failover can actually happen.
    /// - Parameter replicationDelayMilliseconds: replicas reach the primary through a proxy that delays
    ///   every byte this long each way (replication lag); ``crashPrimaryHost()`` kills both together.
    public static func start(
        replicaCount: Int = 2, sentinelCount: Int = 3, replicationDelayMilliseconds: Int? = nil
    ) async throws -> SentinelTopology {
        // No diskless-sync delay: replicas come online at once instead of after Redis' default 5 s.
        let replication = ["--repl-diskless-sync-delay", "0"]
        let primary = try await RedisServer.start(arguments: replication)
        var proxies: [RedisServer] = []
        for _ in 0..<(replicationDelayMilliseconds == nil ? 0 : replicaCount) {
            proxies.append(try await RedisServer.startDelayProxy(to: primary, delayMilliseconds: replicationDelayMilliseconds ?? 0))
        }
        var replicas: [RedisServer] = []
        for index in 0..<replicaCount {
            let upstream = proxies.isEmpty ? primary.port : proxies[index].port
            replicas.append(try await RedisServer.start(arguments: replication + ["--replicaof", "127.0.0.1", String(upstream)]))
        }
        var sentinels: [RedisServer] = []
        for _ in 0..<sentinelCount {
            sentinels.append(try await RedisServer.startSentinel(monitoring: primary))
        }
        let topology = SentinelTopology(primary: primary, replicas: replicas, sentinels: sentinels, proxies: proxies)
        let primaryClient = RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: primary.port))
        let ready = await eventually(timeout: .seconds(30), interval: .milliseconds(100)) {
            // Every replica online and streaming (ROLE lists replicas that are still syncing too)...
            guard try await replicasAreStreaming(primaryClient, replicas: replicaCount) else { return false }
            // ...and every sentinel knowing every replica and the other sentinels.
            for sentinel in sentinels {
                let state = try await topology.masterState(sentinel)
                guard state["num-slaves"] == String(replicaCount), state["num-other-sentinels"] == String(sentinelCount - 1) else {
                    return false
                }
            }
            return true
        }
        await primaryClient.shutdown()
        guard ready else { throw TestServerError("the sentinels did not discover the replicas and each other within 30 s") }
        return topology
    }

    /// The primary's port as the sentinels currently name it (the first sentinel that answers).
    public func primaryPortPerSentinels() async throws -> Int? {
        for sentinel in sentinels {
            let client = RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: sentinel.port))
            let reply = try? await client.send("SENTINEL", "GET-MASTER-ADDR-BY-NAME", RedisArgument(masterName))
            await client.shutdown()
            if let port = reply?.array?.last?.string.flatMap({ Int($0) }) { return port }
        }
        return nil
    }

    /// `SENTINEL MASTER <name>` as a dictionary.
    func masterState(_ sentinel: RedisServer) async throws -> [String: String] {
        let client = RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: sentinel.port))
        let fields: [RESPValue]
        do {
            fields = try await client.send("SENTINEL", "MASTER", RedisArgument(masterName)).array ?? []
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
        var state: [String: String] = [:]
        for index in stride(from: 0, to: fields.count - 1, by: 2) {
            if let key = fields[index].string, let value = fields[index + 1].string { state[key] = value }
        }
        return state
    }

    /// A host crash: the primary and the replication bytes in flight to its replicas die together.
    public func crashPrimaryHost() async {
        // The proxies first: a primary that outlived them by even a millisecond would still ship
        // what they held; this way whatever the primary acknowledged in the last moments is gone.
        // Signalled back to back, before any is reaped.
        await RedisServer.killTogether(proxies + [primary])
    }
}
