import Logging
import NIOCore
import Synchronization

/// Where each command goes in a Redis Cluster: the primary of its key's slot. Follows the cluster
/// as it changes: `MOVED` (the map is patched and a refresh started, asking that node first), slot
/// migrations, a primary's death and its replica's promotion, nodes added and given slots.
///
/// - Connections: one per event loop per primary, made lazily, pipelined, confirmed with `ROLE`,
///   loading the function libraries like every connection of the client.
/// - A node whose connection fails, or that answers `READONLY`, starts the refresh loop, which
///   polls until the map names another primary for its slots; commands for other shards go on over
///   their own connections, never waiting for it.
/// The refresh decisions are ``ClusterStateMachine``'s; whether a command is sent again is
/// ``CommandAttempt``'s; this class carries them out.
final class ClusterTopology: RedisTopology {
    /// How long one node may take to connect and answer `CLUSTER SLOTS` during a refresh.
    static let refreshQueryTimeout = Duration.milliseconds(500)

    private let state: Mutex<ClusterStateMachine>
    private let pools = Mutex<[RedisEndpoint: [ConnectionSlot]]>([:])
    private let nextLoop = Atomic<Int>(0)
    /// Where the refresh loop runs (at most one at a time: ``ClusterStateMachine`` decides).
    private let background: BackgroundWork
    private let loops: [any EventLoop]
    private let configuration: RedisConfiguration
    private let functionLibraries: [RedisFunctionLibrary]
    private let logger: Logger
    private let metrics: RedisClientMetrics?

    init(
        configuration: RedisConfiguration, cluster: ClusterConfiguration, loops: [any EventLoop],
        functionLibraries: [RedisFunctionLibrary], background: BackgroundWork, logger: Logger, metrics: RedisClientMetrics?
    ) {
        self.state = Mutex(ClusterStateMachine(seeds: cluster.seeds))
        self.background = background
        self.loops = loops
        self.configuration = configuration
        self.functionLibraries = functionLibraries
        self.logger = logger
        self.metrics = metrics
    }

    var deployment: CommandAttempt.Deployment { .cluster }

    // MARK: - Commands

    /// A connection to the primary of `slot` (any primary for `nil`).
    /// - Throws: `connectionFailed` when no node serves the slot yet (the refresh loop is at work).
    func connection(forSlot slot: Int?) async throws -> RedisConnection {
        guard let endpoint = route(slot) else {
            throw RedisClientError.connectionFailed(
                "no node of the Redis Cluster serves slot \(slot.map(String.init) ?? "any") (seeds: \(state.withLock { $0.seeds }.map(\.description).joined(separator: ",")))"
            )
        }
        return try await connection(to: endpoint)
    }

    func noticed(_ notice: CommandAttempt.Notice, on connection: RedisConnection?) async {
        switch notice {
        case .unreachable(let endpoint), .notPrimary(let endpoint):
            nodeFailed(endpoint)  // the map may be out of date: a replica now, or gone
        case .clusterDown:
            if state.withLock({ $0.requestRefresh() }) { startRefreshLoop() }
        }
    }

    func moved(slot: Int, to endpoint: RedisEndpoint) {
        if state.withLock({ $0.moved(slot: slot, to: endpoint) }) { startRefreshLoop() }
    }

    /// The primary of `slot` (any primary for `nil`) in the current map; `nil` when there is none,
    /// after asking for a refresh. Also starts the periodic refresh when it is due.
    private func route(_ slot: Int?) -> RedisEndpoint? {
        let (endpoint, start) = state.withLock { state -> (RedisEndpoint?, Bool) in
            var start = state.refreshIfDue(now: .now)
            let endpoint = slot.map { state.map.primary(forSlot: $0) } ?? state.map.primaries.first
            if endpoint == nil, state.requestRefresh() { start = true }
            return (endpoint, start)
        }
        if start { startRefreshLoop() }
        return endpoint
    }

    /// A live connection to `endpoint`: the caller's event loop's when it runs on one. A connect
    /// that fails marks the node as failing (the refresh loop looks for its successor).
    func connection(to endpoint: RedisEndpoint) async throws -> RedisConnection {
        metrics?.recordCommand(to: endpoint)
        do {
            return try await pooledConnection(to: endpoint)
        } catch let error as RedisClientError where error.code == .connectionFailed || error.code == .notPrimary {
            nodeFailed(endpoint)
            throw error
        }
    }

    private func pooledConnection(to endpoint: RedisEndpoint) async throws -> RedisConnection {
        let connections = pools.withLock { pools -> [ConnectionSlot] in
            if let connections = pools[endpoint] { return connections }
            let target = ConnectionTarget(
                endpoint: { endpoint }, confirmsPrimary: true,
                connected: { [weak self] in self?.nodeConnected($0) },
                lost: { [weak self] in self?.nodeFailed($0) }
            )
            let connections = loops.map { loop in
                ConnectionSlot(
                    eventLoop: loop, configuration: configuration, functionLibraries: functionLibraries, target: target,
                    background: background, logger: logger
                )
            }
            pools[endpoint] = connections
            return connections
        }
        let own = connections.first { $0.eventLoop.inEventLoop } ?? connections[nextLoop.wrappingAdd(1, ordering: .relaxed).oldValue % connections.count]
        do {
            return try await own.connection()
        } catch let error as RedisClientError where error.code == .connectionFailed {
            // This loop's connection is backing off; another loop's live one to the same node will do.
            guard let live = connections.lazy.compactMap(\.liveConnection).first else { throw error }
            return live
        }
    }

    // MARK: - Topology

    private func nodeFailed(_ endpoint: RedisEndpoint) {
        if state.withLock({ $0.nodeFailed(endpoint, now: .now) }) { startRefreshLoop() }
    }

    private func nodeConnected(_ endpoint: RedisEndpoint) {
        state.withLock { $0.nodeConnected(endpoint) }
    }

    private func startRefreshLoop() {
        if !background.start({ await self.runRefreshLoop() }) {
            state.withLock { $0.loopStopped() }  // shut down
        }
    }

    /// Rounds of `CLUSTER SLOTS` as ``ClusterStateMachine`` plans them, until it says to stop.
    private func runRefreshLoop() async {
        defer { state.withLock { $0.loopStopped() } }
        while !Task.isCancelled {
            let round = state.withLock { $0.nextRound(now: .now) }
            if round.delay > .zero {
                do { try await Task.sleep(for: round.delay) } catch { return }
            }
            let answer = await fetchMap(from: round.sources)
            metrics?.recordRefresh(succeeded: answer != nil)
            let (again, primaries) = state.withLock { state in
                (state.roundFinished(answer, now: .now), state.map.primaries)
            }
            if answer != nil { await closeConnections(except: primaries) }
            if !again { return }
        }
    }

    /// The first map one of `sources` gives, each asked with a short deadline.
    private func fetchMap(from sources: [RedisEndpoint]) async -> ClusterSlotMap? {
        for source in sources {
            var nodeConfiguration = configuration.pointing(to: source)
            nodeConfiguration.cluster = nil
            do {
                let reply = try await RedisConnection.query(["CLUSTER", "SLOTS"], at: nodeConfiguration, on: loops[0], within: Self.refreshQueryTimeout)
                let map = try ClusterSlotMap(clusterSlots: reply, from: source)
                if map.coveredSlots > 0 { return map }
            } catch {
                logger.debug("a cluster node gave no slot map", metadata: ["node": "\(source)", "error": "\(error)"])
            }
        }
        logger.warning("no cluster node gave a slot map", metadata: ["asked": "\(sources.map(\.description).joined(separator: ","))"])
        return nil
    }

    /// Closes the connections to nodes that no longer serve slots as primaries (a demoted primary,
    /// a removed node).
    private func closeConnections(except primaries: [RedisEndpoint]) async {
        let stale = pools.withLock { pools -> [ConnectionSlot] in
            let gone = pools.keys.filter { !primaries.contains($0) }
            return gone.flatMap { pools.removeValue(forKey: $0) ?? [] }
        }
        for slot in stale { await slot.shutdown() }
    }

    /// Loads every library on every primary of the map.
    func loadFunctionLibrariesEverywhere() async throws {
        _ = try await currentMap()
        for primary in state.withLock({ $0.map.primaries }) {
            try await connection(to: primary).load(functionLibraries)
        }
    }

    /// Sends `command` once to every primary of the map, in shard order.
    func sendToEveryPrimary(_ command: [RedisArgument]) async throws -> [RESPValue] {
        _ = try await currentMap()
        var replies: [RESPValue] = []
        for primary in state.withLock({ $0.map.primaries }) {
            replies.append(try await connection(to: primary).send(command))
        }
        return replies
    }

    /// Groups `slots` by the primary the map has serving each (slots no primary serves are left
    /// out), and sends each such primary once the command `command` makes from the positions in
    /// `slots` of its own; the primaries are asked at once. Each outcome comes apart, so one
    /// unreachable shard fails only its own part.
    func sendPerPrimary(
        slots: [Int], _ command: ([Int]) -> [RedisArgument]
    ) async throws -> [(positions: [Int], reply: Result<RESPValue, any Error>)] {
        let map = try await currentMap()
        var groups: [RedisEndpoint: [Int]] = [:]
        for (position, slot) in slots.enumerated() {
            if let primary = map.primary(forSlot: slot) { groups[primary, default: []].append(position) }
        }
        let requests = groups.map { (endpoint: $0.key, positions: $0.value, command: command($0.value)) }
        return await withTaskGroup(of: (positions: [Int], reply: Result<RESPValue, any Error>).self) { group in
            for request in requests {
                group.addTask {
                    do {
                        return (request.positions, .success(try await self.connection(to: request.endpoint).send(request.command)))
                    } catch {
                        return (request.positions, .failure(error))
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
    }

    /// The map, waiting (within the failover deadline) for the first one.
    private func currentMap() async throws -> ClusterSlotMap {
        let deadline = ContinuousClock.now + configuration.failoverTimeout
        while true {
            _ = route(nil)
            let map = state.withLock { $0.map }
            if map.coveredSlots > 0 { return map }
            guard ContinuousClock.now < deadline else {
                throw RedisClientError.connectionFailed(
                    "no seed or node of the Redis Cluster gave a slot map (seeds: \(state.withLock { $0.seeds }.map(\.description).joined(separator: ",")))"
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Every primary of the map, with its slots, replicas and what `ROLE` says over sessiond's own
    /// connection to it. While a primary does not answer (a shard failing over), it asks again with
    /// the newest map until the failover deadline, as commands for that shard wait.
    func status() async throws -> RedisClusterStatus {
        let deadline = ContinuousClock.now + configuration.failoverTimeout
        while true {
            let status = try await statusOnce()
            guard !status.isHealthy, ContinuousClock.now + .milliseconds(200) < deadline else { return status }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    private func statusOnce() async throws -> RedisClusterStatus {
        let map = try await currentMap()
        let nodes = await withTaskGroup(of: RedisClusterStatus.Node.self) { group in
            for primary in map.primaries {
                group.addTask {
                    var node = RedisClusterStatus.Node(
                        endpoint: primary, role: "unknown", slotRanges: map.slotRanges(of: primary),
                        replicas: map.replicas(of: primary), connectedReplicas: 0, error: nil
                    )
                    do {
                        let role = try await self.connection(to: primary).send(["ROLE"]).array ?? []
                        node.role = role.first?.string ?? "unknown"
                        // The replicas as the primary itself reports them ([ip, port, offset] each),
                        // not as the cached map had them: right after a failover the map lags.
                        let connected = role.count >= 3 ? role[2].array ?? [] : []
                        node.connectedReplicas = connected.count
                        node.replicas = connected.compactMap { replica in
                            guard let fields = replica.array, fields.count >= 2, let host = fields[0].string,
                                let port = fields[1].string.flatMap({ Int($0) })
                            else { return nil }
                            return RedisEndpoint(host: host, port: port)
                        }
                    } catch {
                        node.error = (error as? RedisClientError)?.description ?? "\(error)"
                    }
                    return node
                }
            }
            var nodes: [RedisClusterStatus.Node] = []
            for await node in group { nodes.append(node) }
            return nodes.sorted { ($0.slotRanges.first?.lowerBound ?? Int.max) < ($1.slotRanges.first?.lowerBound ?? Int.max) }
        }
        return RedisClusterStatus(coveredSlots: map.coveredSlots, nodes: nodes)
    }

    /// Closes every connection (the refresh loop ends with the client's background work).
    func shutdown() async {
        let slots = pools.withLock { pools in
            defer { pools = [:] }
            return pools.values.flatMap { $0 }
        }
        for slot in slots { await slot.shutdown() }
    }
}

/// What ``RedisClient/clusterStatus()`` reports: the slots covered and every primary serving some.
public struct RedisClusterStatus: Sendable {
    public struct Node: Sendable {
        public var endpoint: RedisEndpoint
        /// The first element of `ROLE` on sessiond's connection: `master` for a usable primary.
        public var role: String
        public var slotRanges: [ClosedRange<Int>]
        /// The replicas connected to it (from `ROLE`; those `CLUSTER SLOTS` lists when it did not answer).
        public var replicas: [RedisEndpoint]
        /// Replicas connected to it now (from `ROLE`).
        public var connectedReplicas: Int
        /// Why sessiond could not ask it, when it could not.
        public var error: String?
    }

    /// Slots some primary serves; 16384 when the whole key space is covered.
    public let coveredSlots: Int
    public let nodes: [Node]

    /// Every slot is served by a primary that answered `ROLE` as a master.
    public var isHealthy: Bool {
        coveredSlots == HashSlot.count && nodes.allSatisfy { $0.error == nil && $0.role == "master" }
    }
}
