import Metrics
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// An async Redis client: a few long-lived, pipelined connections shared by any number of
/// concurrent callers.
///
/// - Connections are made lazily (one per event loop unless configured otherwise) and remade after
///   they break, with capped exponential backoff; the client recovers by itself when Redis returns.
/// - Each command has a deadline (``RedisConfiguration/commandTimeout``); past it the command fails
///   with `timeout` instead of hanging.
/// - A cancelled caller gets `CancellationError`; the other callers on its connection are unaffected.
/// - Function libraries given at creation are loaded on every connection and reloaded when Redis has
///   lost them (see ``fcall(_:keys:arguments:options:)``).
/// - One send loop serves every deployment: where a command goes is the topology's (one server, the
///   primary Sentinel names, the primary of a Cluster slot), and whether it is sent again after an
///   error is ``CommandAttempt``'s.
/// - All of its background work (connects, the sentinels' lookups and announcements, a Cluster's
///   map refreshes) runs inside ``run()``, which must run while the client is used; ``shutdown()``
///   ends it.
public final class RedisClient: Sendable {
    private let topology: any RedisTopology
    private let primaries: PrimaryTopology?
    private let cluster: ClusterTopology?
    private let functionLibraries: [RedisFunctionLibrary]
    private let failoverTimeout: Duration
    private let durability: RedisDurability?
    private let metrics: RedisClientMetrics?
    private let background = BackgroundWork()

    /// A client for `configuration`, on `eventLoopGroup`'s loops (share the HTTP server's group, so
    /// that a request's command runs on the request's own loop). Nothing connects until the first command.
    /// - Parameter metricsFactory: where to report command latency and errors and the primary in use
    ///   (see ``RedisClientMetrics``); nothing is reported without one.
    public init(
        configuration: RedisConfiguration,
        functionLibraries: [RedisFunctionLibrary] = [],
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "RedisClient"),
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        let loops = Array(eventLoopGroup.makeIterator())
        let count = max(1, configuration.connectionCount ?? loops.count)
        let connectionLoops = (0..<count).map { loops[$0 % loops.count] }
        let metrics = metricsFactory.map { RedisClientMetrics(factory: $0) }
        if let clusterConfiguration = configuration.cluster {
            let cluster = ClusterTopology(
                configuration: configuration, cluster: clusterConfiguration, loops: connectionLoops,
                functionLibraries: functionLibraries, background: background, logger: logger, metrics: metrics
            )
            self.cluster = cluster
            self.primaries = nil
            self.topology = cluster
        } else {
            let primaries = PrimaryTopology(
                configuration: configuration, loops: connectionLoops, functionLibraries: functionLibraries, background: background,
                logger: logger, metrics: metrics
            )
            self.cluster = nil
            self.primaries = primaries
            self.topology = primaries
        }
        self.functionLibraries = functionLibraries
        self.failoverTimeout = configuration.failoverTimeout
        self.durability = configuration.durability
        self.metrics = metrics
    }

    /// Runs all of the client's background work until ``shutdown()`` or cancellation: every
    /// connect and reconnect, the lookups of the primary through the sentinels and the
    /// subscriptions to their failover announcements, and a Cluster's slot-map refreshes. Commands
    /// wait for the connects it makes, so it must be running while the client is used (as a
    /// service of the application, or in a task of the caller's); shutdown cancels what is left.
    public func run() async {
        await withDiscardingTaskGroup { group in
            if let primaries { group.addTask { await primaries.run() } }
            await background.run()
            group.cancelAll()
        }
    }

    /// Sends one command and returns its reply.
    ///
    /// Commands from concurrent callers are pipelined; each caller gets its own reply. After an
    /// error the command is sent again as ``CommandAttempt`` decides: with Sentinel or Cluster,
    /// until ``RedisConfiguration/failoverTimeout``, whenever that is safe (always when it was
    /// certainly not applied; after a broken connection, a timeout or a replica wait that timed
    /// out, only when `options` says it is ``RedisCommandOptions/idempotent``).
    ///
    /// With ``RedisCommandOptions/durable`` and ``RedisConfiguration/durability`` set, the reply is
    /// returned only once the configured number of replicas acknowledged the write (else
    /// `durabilityTimeout`).
    /// - Throws: ``RedisClientError`` — `serverError` for Redis' error reply (only this command fails),
    ///   `timeout`, `connectionClosed` (the command may or may not have run), `connectionFailed`,
    ///   `notPrimary`, `durabilityTimeout`, `authenticationFailed`, `protocolError`, `invalidCommand`,
    ///   `shutDown`; or `CancellationError`.
    public func send(_ arguments: [RedisArgument], options: RedisCommandOptions = []) async throws -> RESPValue {
        try await send(.command(arguments), options: options)
    }

    /// Variadic form of ``send(_:options:)``: `try await client.send("GET", "key")`.
    public func send(_ arguments: RedisArgument...) async throws -> RESPValue {
        try await send(arguments)
    }

    private func send(_ payload: RedisPayload, options: RedisCommandOptions) async throws -> RESPValue {
        guard let metrics else { return try await sendRetrying(payload, options: options) }
        let started = ContinuousClock.now
        do {
            let reply = try await sendRetrying(payload, options: options)
            metrics.recordCommand(payload.leading, duration: .now - started, error: nil)
            return reply
        } catch {
            metrics.recordCommand(payload.leading, duration: .now - started, error: error)
            throw error
        }
    }

    /// The one send loop: asks the topology for a connection, sends, and carries out what
    /// ``CommandAttempt`` says to do after an error.
    private func sendRetrying(_ payload: RedisPayload, options: RedisCommandOptions) async throws -> RESPValue {
        let durability = options.contains(.durable) ? self.durability : nil
        let slot = cluster == nil ? nil : HashSlot.of(command: payload.leading)
        var attempt = CommandAttempt(
            deployment: topology.deployment, idempotent: options.contains(.idempotent),
            canReloadFunctions: !functionLibraries.isEmpty, deadline: .now + failoverTimeout
        )
        // Where the next send goes when not where the topology routes it: a redirect's node.
        var redirect: ClusterRedirect?
        var connection: RedisConnection?
        var reloadFunctions = false
        while true {
            let error: RedisClientError
            do {
                let current: RedisConnection
                if let connection {
                    current = connection
                } else if let redirect {
                    current = try await topology.connection(to: redirect.endpoint)
                } else {
                    current = try await topology.connection(forSlot: slot)
                }
                connection = current
                if reloadFunctions {
                    reloadFunctions = false
                    try await current.load(functionLibraries)
                }
                return try await current.send(payload, asking: redirect?.kind == .ask, durability: durability)
            } catch let failure as RedisClientError {
                error = failure
            }
            switch attempt.next(after: error, from: connection?.endpoint, now: .now) {
            case .fail(let error):
                throw error
            case .redirect(let target):
                metrics?.recordRedirect(target.kind)
                if target.kind == .moved { topology.moved(slot: target.slot, to: target.endpoint) }
                redirect = target
                connection = nil
            case .reloadFunctions:
                // The function did not run: the server that lacks the libraries gets them, and the
                // command goes there again.
                reloadFunctions = true
            case .retry(let pause, let notice):
                if let notice { await topology.noticed(notice, on: connection) }
                if error.code == .durabilityTimeout { metrics?.recordDurabilityRetry() }
                redirect = nil
                connection = nil
                try await Task.sleep(for: pause)
            }
        }
    }

    /// Cluster mode: the slots covered and every primary, with what `ROLE` says on sessiond's own
    /// connection to it. `nil` in the other modes.
    /// - Throws: `connectionFailed` when no node gave a slot map within the failover deadline.
    public func clusterStatus() async throws -> RedisClusterStatus? {
        try await cluster?.status()
    }

    /// The server commands go to, how it was found, and what its `ROLE` says now (in Cluster mode:
    /// one of the primaries; see ``clusterStatus()``).
    public func primaryStatus() async throws -> RedisPrimaryStatus {
        let (endpoint, source) = try await primaries?.resolver.primary() ?? (RedisEndpoint(host: "cluster", port: 0), "cluster")
        let role = try await send(["ROLE"], options: .idempotent).array ?? []
        return RedisPrimaryStatus(
            endpoint: endpoint, foundBy: source, role: role.first?.string ?? "unknown",
            connectedReplicas: role.count >= 3 ? role[2].array?.count ?? 0 : 0
        )
    }

    /// Closes every connection and ends ``run()``; later commands fail with `shutDown`.
    public func shutdown() async {
        background.finish()
        await topology.shutdown()
    }
}

extension RedisClient {
    /// Calls a Redis Function with `FCALL`.
    ///
    /// When Redis answers that the function does not exist (a restart, a failover, `FUNCTION FLUSH`),
    /// the client's libraries are loaded on that server and the call is repeated once; that is safe
    /// because a function that was not found did not run.
    /// - Throws: as ``send(_:options:)``; the function's own errors come as `serverError`.
    public func fcall(
        _ function: String, keys: [RedisArgument] = [], arguments: [RedisArgument] = [], options: RedisCommandOptions = []
    ) async throws -> RESPValue {
        try await send(.command(Self.fcallCommand(function, keys: keys, arguments: arguments)), options: options)
    }

    /// Calls a Redis Function and runs `read` right after it in the same `MULTI`/`EXEC` block, so
    /// nothing comes between them: the state a write left is read with a plain command rather than
    /// handed back through Lua, which costs Redis far more (see BENCHMARKS.md). `read` must name a
    /// key of the function's hash slot. Reloads missing libraries as ``fcall(_:keys:arguments:options:)`` does.
    /// - Returns: the function's result and `read`'s reply.
    public func fcall(
        _ function: String, keys: [RedisArgument], arguments: [RedisArgument], then read: [RedisArgument],
        options: RedisCommandOptions = []
    ) async throws -> (result: RESPValue, read: RESPValue) {
        let block = RedisPayload.transaction([Self.fcallCommand(function, keys: keys, arguments: arguments), read])
        let replies = try await send(block, options: options).array ?? []
        guard replies.count == 2 else { throw RedisClientError.protocolError("EXEC answered \(replies.count) replies to 2 commands") }
        return (replies[0], replies[1])
    }

    private static func fcallCommand(_ function: String, keys: [RedisArgument], arguments: [RedisArgument]) -> [RedisArgument] {
        var command: [RedisArgument] = []
        command.reserveCapacity(3 + keys.count + arguments.count)  // one allocation, not one per growth
        command.append("FCALL")
        command.append(RedisArgument(function))
        command.append(RedisArgument(keys.count))
        command.append(contentsOf: keys)
        command.append(contentsOf: arguments)
        return command
    }

    /// Sends a command that concerns each server rather than a key (`FUNCTION LIST`, `FUNCTION
    /// DELETE`) to the primary, or in Cluster mode once to every primary; one reply per primary.
    /// Sent once each, without retries: for upkeep that the next round repeats.
    public func sendToEveryPrimary(_ command: [RedisArgument]) async throws -> [RESPValue] {
        if let cluster { return try await cluster.sendToEveryPrimary(command) }
        return [try await topology.connection(forSlot: nil).send(command)]
    }

    /// Sends work that spans many hash slots (a sweep over every bucket of an index) once per
    /// server instead of once per slot: in Cluster mode each primary gets the command `command`
    /// makes from the positions in `slots` of the slots it serves, by the client's slot map; in
    /// the other modes the one server gets every position. A Function called this way declares no
    /// keys and needs the `allow-cross-slot-keys` flag; a slot that moved since the map was made is
    /// not local where it is sent (the Function tells). Sent once each, without retries: for upkeep
    /// that the next round repeats. One outcome per server asked, with the positions it was given.
    public func sendPerPrimary(
        slots: [Int], _ command: ([Int]) -> [RedisArgument]
    ) async throws -> [(positions: [Int], reply: Result<RESPValue, any Error>)] {
        if let cluster { return try await cluster.sendPerPrimary(slots: slots, command) }
        let positions = Array(slots.indices)
        do {
            return [(positions, .success(try await topology.connection(forSlot: nil).send(command(positions))))]
        } catch {
            return [(positions, .failure(error))]
        }
    }

    /// Loads (or replaces) every library the client was given, on the server (in Cluster mode, on
    /// every primary).
    public func loadFunctionLibraries() async throws {
        if let cluster { return try await cluster.loadFunctionLibrariesEverywhere() }
        try await topology.connection(forSlot: nil).load(functionLibraries)
    }
}

/// How a command may be treated, beyond being sent once.
public struct RedisCommandOptions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Sending it twice has the effect of sending it once, so it may be sent again when the outcome
    /// of a send is unknown (a broken connection, a timeout, a replica wait that timed out).
    public static let idempotent = RedisCommandOptions(rawValue: 1 << 0)
    /// A write that waits for ``RedisConfiguration/durability``'s replicas, when that is set.
    public static let durable = RedisCommandOptions(rawValue: 1 << 1)
}

/// What ``RedisClient/primaryStatus()`` reports.
public struct RedisPrimaryStatus: Sendable, Hashable {
    public let endpoint: RedisEndpoint
    /// `configured`, `sentinel <address>`, or the last confirmed primary when no sentinel answered.
    public let foundBy: String
    /// The first element of `ROLE`: `master` for a primary.
    public let role: String
    public let connectedReplicas: Int
}
