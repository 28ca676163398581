import Foundation
import NIOPosix
import RedisClient

#if canImport(Glibc)
import Glibc
#endif

/// A real Redis Cluster on loopback: primaries with one replica each, `cluster-node-timeout 1000`
/// and `cluster-require-full-coverage no`, made with `redis-cli --cluster create`. Its processes
/// live as long as the test holds it (see ``RedisServer``).
public final class RedisClusterTopology: Sendable {
    /// Every node, in the order given to `redis-cli --cluster create` (primaries first).
    public let nodes: [RedisServer]
    /// With ``start(primaries:replicasPerPrimary:firstPrimaryBehindDelayMilliseconds:)``: the proxy
    /// everybody reaches the first primary through.
    public let proxy: RedisServer?

    private init(nodes: [RedisServer], proxy: RedisServer? = nil) {
        self.nodes = nodes
        self.proxy = proxy
    }

    /// The settings every node of a test cluster runs with.
    public static let nodeArguments = [
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
        "--cluster-require-full-coverage", "no", "--repl-diskless-sync-delay", "0",
    ]

    /// `127.0.0.1:<port>,...` of every node, as SESSIOND_REDIS_CLUSTER takes them.
    public var seedList: String { nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") }

    /// The nodes as endpoints.
    public var endpoints: [RedisEndpoint] { nodes.map { RedisEndpoint(host: "127.0.0.1", port: $0.port) } }

    /// Starts `primaries` primaries with `replicasPerPrimary` replicas each, creates the cluster and
    /// waits (bounded) until every node sees it whole and every replica is in sync.
    /// - Parameter firstPrimaryBehindDelayMilliseconds: the first primary announces, and is reached
    ///   by everyone (its replica, sessiond) through, a proxy delaying every byte this long each way:
    ///   its host, whose crash (``crashFirstPrimaryHost()``) loses the bytes in flight.
    public static func start(
        primaries: Int = 3, replicasPerPrimary: Int = 1, firstPrimaryBehindDelayMilliseconds delay: Int? = nil
    ) async throws -> RedisClusterTopology {
        var nodes: [RedisServer] = []
        var proxy: RedisServer?
        if let delay {
            // The proxy's port is announced as the node's, while gossip (the bus) goes direct.
            let port = try freeLoopbackPort(clusterNode: true)
            let proxyPort = try freeLoopbackPort()
            let first = try await RedisServer.start(
                arguments: nodeArguments + ["--cluster-announce-port", String(proxyPort), "--cluster-announce-bus-port", String(port + 10000)],
                port: port
            )
            nodes.append(first)
            proxy = try await RedisServer.startDelayProxy(to: first, delayMilliseconds: delay, port: proxyPort)
        }
        while nodes.count < primaries * (1 + replicasPerPrimary) {
            nodes.append(try await startNode())
        }
        let topology = RedisClusterTopology(nodes: nodes, proxy: proxy)
        let addresses = nodes.enumerated().map { index, node in "127.0.0.1:\(index == 0 ? proxy?.port ?? node.port : node.port)" }
        try await runToCompletion(
            ["redis-cli", "--cluster", "create"] + addresses + ["--cluster-replicas", String(replicasPerPrimary), "--cluster-yes"]
        )
        try await topology.waitUntilHealthy(primaries: primaries, nodeCount: nodes.count)
        return topology
    }

    /// Starts one cluster-enabled node (not yet part of any cluster) on a port whose bus port is free.
    public static func startNode() async throws -> RedisServer {
        var lastError: (any Error)?
        for _ in 0..<5 {
            do {
                return try await RedisServer.start(arguments: nodeArguments, port: try freeLoopbackPort(clusterNode: true))
            } catch {
                lastError = error
            }
        }
        throw lastError ?? TestServerError("no cluster node started")
    }

    /// Waits until every node reports `cluster_state:ok`, knows every node, and sees `primaries`
    /// primaries each with an online replica.
    public func waitUntilHealthy(primaries: Int, nodeCount: Int, timeout: Duration = .seconds(30)) async throws {
        let ready = await eventually(timeout: timeout, interval: .milliseconds(50)) {
            for node in self.nodes {
                let info = try await self.send(["CLUSTER", "INFO"], to: node).string ?? ""
                guard info.contains("cluster_state:ok"), info.contains("cluster_known_nodes:\(nodeCount)") else { return false }
            }
            let slots = try await self.send(["CLUSTER", "SLOTS"], to: self.nodes[0]).array ?? []
            let withReplicas = nodeCount > primaries
            guard Set(slots.compactMap { $0.array?[2].array?[1].integer }).count == primaries,
                !withReplicas || slots.allSatisfy({ ($0.array?.count ?? 0) >= 4 })
            else { return false }
            for node in self.nodes where try await self.send(["ROLE"], to: node).array?.first?.string == "slave" {
                let role = try await self.send(["ROLE"], to: node).array ?? []
                guard role.count >= 4, role[3].string == "connected" else { return false }
            }
            return true
        }
        guard ready else { throw TestServerError("the Redis Cluster did not become healthy within \(timeout)") }
    }

    /// The first primary's host crashes: it and the bytes in flight through its proxy die together.
    public func crashFirstPrimaryHost() async {
        await RedisServer.killTogether([proxy, nodes[0]].compactMap { $0 })
    }

    /// Sends one command to one node (not routed).
    public func send(_ arguments: [RedisArgument], to node: RedisServer) async throws -> RESPValue {
        let client = RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: node.port))
        do {
            let reply = try await client.send(arguments)
            await client.shutdown()
            return reply
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// The node listening on `port`.
    public func node(port: Int) -> RedisServer? {
        if let proxy, proxy.port == port { return nodes[0] }
        return nodes.first { $0.port == port }
    }

    /// The port of the node serving `slot` as primary now, as the first node that answers
    /// `CLUSTER SLOTS` says (a node added to the cluster included).
    public func primaryPort(ofSlot slot: Int) async throws -> Int {
        for source in nodes {
            guard let slots = try? await send(["CLUSTER", "SLOTS"], to: source).array else { continue }
            for range in slots {
                guard let fields = range.array, let start = fields[0].integer, let end = fields[1].integer,
                    start...end ~= Int64(slot), let port = fields[2].array?[1].integer
                else { continue }
                return Int(port)
            }
        }
        throw TestServerError("no node names a primary for slot \(slot)")
    }

    /// The node (of ``nodes``) serving `slot` as primary now.
    public func primary(ofSlot slot: Int) async throws -> RedisServer {
        let port = try await primaryPort(ofSlot: slot)
        guard let node = node(port: port) else { throw TestServerError("slot \(slot) is served by \(port), not one of the cluster's first nodes") }
        return node
    }

    /// The nodes serving slots as primaries now, as the first node that answers says.
    public func primaries() async throws -> [RedisServer] {
        for source in nodes {
            guard let slots = try? await send(["CLUSTER", "SLOTS"], to: source).array else { continue }
            var ports: [Int] = []
            for range in slots {
                if let port = range.array?[2].array?[1].integer, !ports.contains(Int(port)) { ports.append(Int(port)) }
            }
            return ports.compactMap { node(port: $0) }
        }
        throw TestServerError("no node answered CLUSTER SLOTS")
    }

    /// The nodes that are replicas now.
    public func replicas() async throws -> [RedisServer] {
        let primaries = try await primaries()
        return nodes.filter { node in !primaries.contains { $0 === node } }
    }

    /// A node's cluster id.
    public func id(of node: RedisServer) async throws -> String {
        guard let id = try await send(["CLUSTER", "MYID"], to: node).string else { throw TestServerError("CLUSTER MYID gave no id") }
        return id
    }

    /// Moves `slot` from its primary to `target` as `redis-cli --cluster reshard` does: IMPORTING on
    /// the target, MIGRATING on the source, every key MIGRATEd, then the slot assigned to the target
    /// everywhere. `whileMigrating` runs after the keys moved and before the slot is reassigned: the
    /// window in which the source answers ASK.
    public func migrate(slot: Int, to target: RedisServer, whileMigrating: () async throws -> Void = {}) async throws {
        let source = try await primary(ofSlot: slot)
        guard source !== target else { return }
        let sourceID = try await id(of: source)
        let targetID = try await id(of: target)
        _ = try await send(["CLUSTER", "SETSLOT", RedisArgument(slot), "IMPORTING", RedisArgument(sourceID)], to: target)
        _ = try await send(["CLUSTER", "SETSLOT", RedisArgument(slot), "MIGRATING", RedisArgument(targetID)], to: source)
        while true {
            let keys = try await send(["CLUSTER", "GETKEYSINSLOT", RedisArgument(slot), "100"], to: source).array ?? []
            if keys.isEmpty { break }
            _ = try await send(
                ["MIGRATE", "127.0.0.1", RedisArgument(target.port), "", "0", "5000", "KEYS"] + keys.compactMap { $0.bytes.map { RedisArgument(bytes: $0) } },
                to: source
            )
        }
        try await whileMigrating()
        for node in [target, source] {
            _ = try await send(["CLUSTER", "SETSLOT", RedisArgument(slot), "NODE", RedisArgument(targetID)], to: node)
        }
        for node in nodes where node !== target && node !== source {
            _ = try? await send(["CLUSTER", "SETSLOT", RedisArgument(slot), "NODE", RedisArgument(targetID)], to: node)
        }
    }
}

/// Runs `argv` (looked up on PATH) to completion without blocking a thread; throws unless it
/// exits 0 within `timeout`.
public func runToCompletion(_ argv: [String], timeout: Duration = .seconds(60)) async throws {
    let pid = try await NIOThreadPool.singleton.runIfActive { try spawnDyingWithParent(argv) }
    let deadline = ContinuousClock.now + timeout
    while true {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            let exited = status & 0x7f == 0
            let code = (status >> 8) & 0xff
            guard exited && code == 0 else { throw TestServerError("\(argv[0]) failed (status \(status)): \(argv.joined(separator: " "))") }
            return
        }
        if ContinuousClock.now >= deadline {
            Glibc.kill(pid, SIGKILL)
            throw TestServerError("\(argv[0]) did not finish within \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}
