import Logging
import NIOCore
import Synchronization

/// Sends each command to the primary of its key's slot in a Redis Cluster, and follows the cluster
/// as it changes: `MOVED` and `ASK` redirects, slot migrations, a primary's death and its
/// replica's promotion, nodes added and given slots.
///
/// - Connections: one per event loop per primary, made lazily, pipelined, confirmed with `ROLE`,
///   loading the function libraries like every connection of the client.
/// - `MOVED`: resent at once to the node named (it did not run), the map patched and a refresh
///   started (asking that node first). `ASK`: `ASKING` and the command in one write to the node
///   named; the map is left alone. At most ``maximumRedirects`` redirects per command.
/// - `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`, `BUSY`, a connect that fails, or (for an
///   idempotent command) a broken connection or a timeout: retried with backoff within
///   ``RedisConfiguration/failoverTimeout``. A node whose connection fails starts the refresh loop,
///   which polls until the map names another primary for its slots; commands for other shards go
///   on over their own connections, never waiting for it.
/// - "Function not found" (a node given slots after the library was loaded elsewhere): the
///   libraries are loaded on that node and the command is sent again once.
/// The refresh decisions are ``ClusterStateMachine``'s; this class carries them out.
final class ClusterRouter: Sendable {
    /// Redirects one command may follow before it fails: a healthy cluster needs at most two (a
    /// MOVED during a migration, then an ASK).
    static let maximumRedirects = 5
    /// How long one node may take to connect and answer `CLUSTER SLOTS` during a refresh.
    static let refreshQueryTimeout = Duration.milliseconds(500)

    private let state: Mutex<ClusterStateMachine>
    private let pools = Mutex<[RedisEndpoint: [ConnectionSlot]]>([:])
    private let nextLoop = Atomic<Int>(0)
    private let refreshLoop = Mutex<(task: Task<Void, Never>?, isShutDown: Bool)>((nil, false))
    private let loops: [any EventLoop]
    private let configuration: RedisConfiguration
    private let functionLibraries: [RedisFunctionLibrary]
    private let logger: Logger
    private let metrics: RedisClientMetrics?

    init(
        configuration: RedisConfiguration, cluster: ClusterConfiguration, loops: [any EventLoop],
        functionLibraries: [RedisFunctionLibrary], logger: Logger, metrics: RedisClientMetrics?
    ) {
        self.state = Mutex(ClusterStateMachine(seeds: cluster.seeds))
        self.loops = loops
        self.configuration = configuration
        self.functionLibraries = functionLibraries
        self.logger = logger
        self.metrics = metrics
    }

    // MARK: - Commands

    /// Sends one command (or block: routed by its first command) to the node serving its key (any
    /// primary for a command without a key).
    /// - Throws: as ``RedisClient/send(_:idempotent:durable:)``; `connectionFailed` when no node
    ///   serves the slot within the failover deadline or the redirects exceed ``maximumRedirects``.
    func send(_ payload: RedisPayload, idempotent: Bool, durability: RedisDurability?) async throws -> RESPValue {
        let slot = Self.slot(of: payload.leading)
        let deadline = ContinuousClock.now + configuration.failoverTimeout
        var redirect: ClusterRedirect?
        var redirects = 0
        var reloadedFunctions = false
        var pause = Duration.milliseconds(10)
        while true {
            let asking = redirect?.kind == .ask
            let endpoint: RedisEndpoint
            if let target = redirect?.endpoint {
                endpoint = target
            } else if let routed = route(slot) {
                endpoint = routed
            } else {
                // No map yet, or no node serves the slot: the refresh loop is at work.
                guard ContinuousClock.now + pause < deadline else {
                    throw RedisClientError.connectionFailed(
                        "no node of the Redis Cluster serves slot \(slot.map(String.init) ?? "any") (seeds: \(state.withLock { $0.seeds }.map(\.description).joined(separator: ",")))"
                    )
                }
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(200))
                continue
            }
            let attempt = redirect
            redirect = nil
            let error: RedisClientError
            do {
                metrics?.recordCommand(to: endpoint)
                let connection = try await connection(to: endpoint)
                if asking { return try await connection.sendAsking(payload, durability: durability) }
                if let durability { return try await connection.sendDurably(payload, durability) }
                return try await connection.send(payload)
            } catch let failure as RedisClientError {
                error = failure
            }
            if let target = ClusterRedirect(error, answeredBy: endpoint) {
                redirects += 1
                metrics?.recordRedirect(target.kind)
                guard redirects <= Self.maximumRedirects else {
                    throw RedisClientError.connectionFailed("gave up after \(Self.maximumRedirects) Redis Cluster redirects; the last: \(error.message)")
                }
                if target.kind == .moved, state.withLock({ $0.moved(slot: target.slot, to: target.endpoint) }) {
                    startRefreshLoop()
                }
                redirect = target
                continue
            }
            if error.isFunctionNotFound, !reloadedFunctions, !functionLibraries.isEmpty {
                // The FCALL did not run; a node that has never had the library gets it now.
                reloadedFunctions = true
                try await loadFunctionLibraries(on: endpoint)
                redirect = attempt
                continue
            }
            guard retries(after: error, from: endpoint, slot: slot, idempotent: idempotent) else { throw error }
            guard ContinuousClock.now + pause < deadline else { throw error }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(200))
        }
    }

    /// Whether `error` from `endpoint` is worth another attempt, noting what it says about the node.
    private func retries(after error: RedisClientError, from endpoint: RedisEndpoint, slot: Int?, idempotent: Bool) -> Bool {
        switch error.code {
        case .connectionFailed, .notPrimary:
            nodeFailed(endpoint)  // never reached the node as a primary: not applied
            return true
        case .connectionClosed, .timeout:
            guard idempotent else { return false }  // may or may not have run
            nodeFailed(endpoint)
            return true
        case .durabilityTimeout:
            // Retried only when a failover took the slot away meanwhile (its outcome is unknown).
            let movedOn = slot.map { slot in state.withLock { $0.map.primary(forSlot: slot) } != endpoint } ?? false
            return idempotent && movedOn
        case .serverError:
            switch error.serverErrorPrefix {
            case "TRYAGAIN", "LOADING", "MASTERDOWN", "BUSY", "NOREPLICAS":
                return true
            case "CLUSTERDOWN":
                if state.withLock({ $0.requestRefresh() }) { startRefreshLoop() }
                return true
            case "READONLY":
                nodeFailed(endpoint)  // a replica now: the map is out of date
                return true
            default:
                return false
            }
        default:
            return false
        }
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

    /// A live connection to `endpoint`: the caller's event loop's when it runs on one.
    private func connection(to endpoint: RedisEndpoint) async throws -> RedisConnection {
        let slots = pools.withLock { pools -> [ConnectionSlot] in
            if let slots = pools[endpoint] { return slots }
            let target = ConnectionTarget(
                endpoint: { endpoint }, confirmsPrimary: true,
                connected: { [weak self] in self?.nodeConnected($0) },
                lost: { [weak self] in self?.nodeFailed($0) }
            )
            let slots = loops.map { loop in
                ConnectionSlot(eventLoop: loop, configuration: configuration, functionLibraries: functionLibraries, target: target, logger: logger)
            }
            pools[endpoint] = slots
            return slots
        }
        let slot = slots.first { $0.eventLoop.inEventLoop } ?? slots[nextLoop.wrappingAdd(1, ordering: .relaxed).oldValue % slots.count]
        do {
            return try await slot.connection()
        } catch let error as RedisClientError where error.code == .connectionFailed {
            // This loop's connection is backing off; another loop's live one to the same node will do.
            guard let live = slots.lazy.compactMap(\.liveConnection).first else { throw error }
            return live
        }
    }

    /// The slot of the command's key: `FCALL`'s first key, else the first argument, unless the
    /// command has no key (then `nil`: any primary will do).
    static func slot(of arguments: [RedisArgument]) -> Int? {
        guard let command = arguments.first else { return nil }
        let name = String(decoding: command.bytes, as: UTF8.self).uppercased()
        if name == "FCALL" || name == "FCALL_RO" || name == "EVAL" || name == "EVALSHA" {
            guard arguments.count > 3, let count = Int(String(decoding: arguments[2].bytes, as: UTF8.self)), count > 0 else { return nil }
            return HashSlot.of(arguments[3].bytes)
        }
        if keylessCommands.contains(name) || arguments.count < 2 { return nil }
        return HashSlot.of(arguments[1].bytes)
    }

    private static let keylessCommands: Set<String> = [
        "PING", "ECHO", "ROLE", "INFO", "WAIT", "FUNCTION", "CLUSTER", "CLIENT", "CONFIG", "DBSIZE", "TIME",
        "SCAN", "FLUSHALL", "FLUSHDB", "AUTH", "SELECT", "HELLO", "COMMAND", "MEMORY", "SLOWLOG", "LATENCY",
    ]

    // MARK: - Topology

    private func nodeFailed(_ endpoint: RedisEndpoint) {
        if state.withLock({ $0.nodeFailed(endpoint, now: .now) }) { startRefreshLoop() }
    }

    private func nodeConnected(_ endpoint: RedisEndpoint) {
        state.withLock { $0.nodeConnected(endpoint) }
    }

    private func startRefreshLoop() {
        refreshLoop.withLock { loop in
            guard !loop.isShutDown else {
                state.withLock { $0.loopStopped() }
                return
            }
            loop.task = Task { await self.runRefreshLoop() }
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
            nodeConfiguration.connectTimeout = min(configuration.connectTimeout, Self.refreshQueryTimeout)
            nodeConfiguration.commandTimeout = min(configuration.commandTimeout, Self.refreshQueryTimeout)
            do {
                let connection = try await RedisConnection.connect(to: nodeConfiguration, on: loops[0], functionLibraries: [])
                let reply: RESPValue
                do {
                    reply = try await connection.send(["CLUSTER", "SLOTS"])
                } catch {
                    await connection.close()
                    throw error
                }
                await connection.close()
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

    /// Loads every library on `endpoint` (replacing what is there).
    private func loadFunctionLibraries(on endpoint: RedisEndpoint) async throws {
        let connection = try await connection(to: endpoint)
        for library in functionLibraries {
            _ = try await connection.send(library.loadCommand)
        }
    }

    /// Loads every library on every primary of the map.
    func loadFunctionLibrariesEverywhere() async throws {
        _ = try await currentMap()
        for primary in state.withLock({ $0.map.primaries }) {
            try await loadFunctionLibraries(on: primary)
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
                        node.connectedReplicas = role.count >= 3 ? role[2].array?.count ?? 0 : 0
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

    /// Stops the refresh loop and closes every connection.
    func shutdown() async {
        let task = refreshLoop.withLock { loop -> Task<Void, Never>? in
            loop.isShutDown = true
            return loop.task
        }
        task?.cancel()
        await task?.value
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
        /// The replicas `CLUSTER SLOTS` lists with it.
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
