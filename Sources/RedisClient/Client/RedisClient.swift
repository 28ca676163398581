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
///   lost them (see ``fcall(_:keys:arguments:)``).
public final class RedisClient: Sendable {
    private let slots: [ConnectionSlot]
    private let nextSlot = Atomic<Int>(0)
    private let functionLibraries: [RedisFunctionLibrary]
    private let resolver: PrimaryResolver
    /// Cluster mode: where each command goes (then `slots` is empty).
    private let cluster: ClusterRouter?
    private let failoverTimeout: Duration
    private let durability: RedisDurability?
    private let metrics: RedisClientMetrics?

    /// A client for `configuration`. Nothing connects until the first command.
    /// - Parameter metricsFactory: where to report command latency and errors and the primary in use
    ///   (see ``RedisClientMetrics``); nothing is reported without one.
    public convenience init(
        configuration: RedisConfiguration,
        functionLibraries: [RedisFunctionLibrary] = [],
        logger: Logger = Logger(label: "RedisClient"),
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.init(
            configuration: configuration, functionLibraries: functionLibraries,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger, metricsFactory: metricsFactory
        )
    }

    init(
        configuration: RedisConfiguration,
        functionLibraries: [RedisFunctionLibrary],
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        let loops = Array(eventLoopGroup.makeIterator())
        let count = max(1, configuration.connectionCount ?? loops.count)
        let metrics = metricsFactory.map { RedisClientMetrics(factory: $0) }
        let resolver = PrimaryResolver(configuration: configuration, logger: logger, metrics: metrics)
        let target = ConnectionTarget(
            endpoint: { try await resolver.primary().0 }, confirmsPrimary: resolver.isSentinelMode,
            connected: { resolver.confirmed($0) }, lost: { resolver.invalidate($0) }
        )
        if let clusterConfiguration = configuration.cluster {
            self.cluster = ClusterRouter(
                configuration: configuration, cluster: clusterConfiguration, loops: (0..<count).map { loops[$0 % loops.count] },
                functionLibraries: functionLibraries, logger: logger, metrics: metrics
            )
            self.slots = []
        } else {
            self.cluster = nil
            self.slots = (0..<count).map { index in
                ConnectionSlot(
                    eventLoop: loops[index % loops.count], configuration: configuration,
                    functionLibraries: functionLibraries, target: target, logger: logger
                )
            }
        }
        self.functionLibraries = functionLibraries
        self.resolver = resolver
        self.failoverTimeout = configuration.failoverTimeout
        self.durability = configuration.durability
        self.metrics = metrics
        let slots = self.slots
        resolver.watchSwitches { primary in
            for slot in slots { slot.follow(switchTo: primary) }
        }
    }

    /// Sends one command and returns its reply.
    ///
    /// Commands from concurrent callers are pipelined; each caller gets its own reply.
    ///
    /// In Sentinel mode a command that fails because of a failover is retried until
    /// ``RedisConfiguration/failoverTimeout``, but only when repeating it is safe: always when it was
    /// certainly not applied (no connection to a primary could be made, or the server answered
    /// `READONLY`, `MASTERDOWN`, `LOADING` or `NOREPLICAS`), and after a broken connection, a
    /// timeout, or a durability timeout on a primary that a failover is leaving, only when the
    /// caller says the command is `idempotent` (repeating it has the effect of sending it once).
    /// - Throws: ``RedisClientError`` — `serverError` for Redis' error reply (only this command fails),
    ///   `timeout`, `connectionClosed` (the command may or may not have run), `connectionFailed`,
    ///   `notPrimary`, `authenticationFailed`, `protocolError`, `invalidCommand`, `shutDown`; or `CancellationError`.
    ///
    /// With `durable: true` and ``RedisConfiguration/durability`` set, the reply is returned only once
    /// the configured number of replicas acknowledged the write (else `durabilityTimeout`, and the
    /// write is not retried: it did happen on the primary).
    public func send(_ arguments: [RedisArgument], idempotent: Bool = false, durable: Bool = false) async throws -> RESPValue {
        try await send(.command(arguments), idempotent: idempotent, durable: durable)
    }

    private func send(_ payload: RedisPayload, idempotent: Bool, durable: Bool) async throws -> RESPValue {
        guard let metrics else { return try await sendRetrying(payload, idempotent: idempotent, durable: durable) }
        let started = ContinuousClock.now
        do {
            let reply = try await sendRetrying(payload, idempotent: idempotent, durable: durable)
            metrics.recordCommand(payload.leading, duration: .now - started, error: nil)
            return reply
        } catch {
            metrics.recordCommand(payload.leading, duration: .now - started, error: error)
            throw error
        }
    }

    private func sendRetrying(_ payload: RedisPayload, idempotent: Bool, durable: Bool) async throws -> RESPValue {
        let durability = durable ? self.durability : nil
        if let cluster { return try await cluster.send(payload, idempotent: idempotent, durability: durability) }
        guard resolver.isSentinelMode else { return try await sendToTheServer(payload, idempotent: idempotent, durability: durability) }
        let deadline = ContinuousClock.now + failoverTimeout
        var pause = Duration.milliseconds(50)
        while true {
            do {
                return try await sendOnce(payload, durability: durability)
            } catch let error as RedisClientError where error.isSafeToRetry(idempotent: idempotent) {
                guard ContinuousClock.now + pause < deadline else { throw error }
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(400))
            }
        }
    }

    /// One server, no failover to wait for. An idempotent command whose connection the server
    /// closed (`CLIENT KILL`, its `timeout`, a proxy) is sent again over a new connection, within
    /// the failover deadline, once this command has reached the server; a server that cannot be
    /// reached, refuses every connection or answers late still fails at once.
    private func sendToTheServer(_ payload: RedisPayload, idempotent: Bool, durability: RedisDurability?) async throws -> RESPValue {
        let deadline = ContinuousClock.now + failoverTimeout
        var pause = Duration.milliseconds(5)
        var reachedTheServer = false
        while true {
            do {
                let connection = try await connectionForCommand()
                reachedTheServer = true
                return try await send(payload, on: connection, durability: durability)
            } catch let error as RedisClientError where idempotent && reachedTheServer && error.code == .connectionClosed {
                guard ContinuousClock.now + pause < deadline else { throw error }
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(400))
            }
        }
    }

    /// A caller running on one of the client's event loops (a task on an event-loop executor) gets
    /// that loop's connection, so its command and reply never change thread; any other caller takes
    /// the slots in turn.
    private func slotForCaller() -> ConnectionSlot {
        if let local = slots.first(where: { $0.eventLoop.inEventLoop }) { return local }
        return slots[nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue % slots.count]
    }

    private func sendOnce(_ payload: RedisPayload, durability: RedisDurability?) async throws -> RESPValue {
        try await send(payload, on: try await connectionForCommand(), durability: durability)
    }

    /// The caller's slot's connection, or any live one when that slot cannot connect.
    private func connectionForCommand() async throws -> RedisConnection {
        do {
            return try await slotForCaller().connection()
        } catch let error as RedisClientError where error.code != .shutDown {
            // This slot cannot connect (or is backing off); the command was not sent, so it is safe
            // to send it on another slot's live connection instead of failing it.
            guard let live = slots.lazy.compactMap(\.liveConnection).first else { throw error }
            return live
        }
    }

    private func send(_ payload: RedisPayload, on connection: RedisConnection, durability: RedisDurability?) async throws -> RESPValue {
        do {
            if let durability {
                return try await connection.sendDurably(payload, durability)
            }
            return try await connection.send(payload)
        } catch let error as RedisClientError where error.meansNotThePrimary {
            // The server is (now) a replica, or lost its primary: stop using it and ask again.
            resolver.invalidate(connection.endpoint)
            await connection.close()
            throw error
        } catch let error as RedisClientError where error.code == .durabilityTimeout && !resolver.isCurrent(connection.endpoint) {
            // The replicas did not confirm because a failover is leaving this primary: whether the
            // write survives is unknown, exactly as if the connection had broken (so an idempotent
            // write is retried on the new primary).
            await connection.close()
            throw RedisClientError.connectionClosed("a failover left \(connection.endpoint) while the write waited for its replicas: \(error.message)")
        }
    }

    /// Variadic form of ``send(_:)-([RedisArgument])``: `try await client.send("GET", "key")`.
    public func send(_ arguments: RedisArgument...) async throws -> RESPValue {
        try await send(arguments, idempotent: false)
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
        let (endpoint, source) = try await resolver.primary()
        let role = try await send(["ROLE"], idempotent: true).array ?? []
        return RedisPrimaryStatus(
            endpoint: endpoint, foundBy: source, role: role.first?.string ?? "unknown",
            connectedReplicas: role.count >= 3 ? role[2].array?.count ?? 0 : 0
        )
    }

    /// Closes every connection; later commands fail with `shutDown`.
    public func shutdown() async {
        resolver.shutdown()
        await cluster?.shutdown()
        for slot in slots {
            await slot.shutdown()
        }
    }
}

extension RedisClient {
    /// Calls a Redis Function with `FCALL`.
    ///
    /// When Redis answers that the function does not exist (a restart, a failover, `FUNCTION FLUSH`),
    /// the client's libraries are loaded again and the call is repeated once; that is safe because a
    /// function that was not found did not run.
    /// - Throws: as ``send(_:)-([RedisArgument])``; the function's own errors come as `serverError`.
    public func fcall(
        _ function: String, keys: [RedisArgument] = [], arguments: [RedisArgument] = [],
        idempotent: Bool = false, durable: Bool = false
    ) async throws -> RESPValue {
        try await callReloading(.command(Self.fcallCommand(function, keys: keys, arguments: arguments)), idempotent: idempotent, durable: durable)
    }

    /// Calls a Redis Function and runs `read` right after it in the same `MULTI`/`EXEC` block, so
    /// nothing comes between them: the state a write left is read with a plain command rather than
    /// handed back through Lua, which costs Redis far more (see BENCHMARKS.md). `read` must name a
    /// key of the function's hash slot. Reloads missing libraries as ``fcall(_:keys:arguments:idempotent:durable:)`` does.
    /// - Returns: the function's result and `read`'s reply.
    public func fcall(
        _ function: String, keys: [RedisArgument], arguments: [RedisArgument], then read: [RedisArgument],
        idempotent: Bool = false, durable: Bool = false
    ) async throws -> (result: RESPValue, read: RESPValue) {
        let block = RedisPayload.transaction([Self.fcallCommand(function, keys: keys, arguments: arguments), read])
        let replies = try await callReloading(block, idempotent: idempotent, durable: durable).array ?? []
        guard replies.count == 2 else { throw RedisClientError.protocolError("EXEC answered \(replies.count) replies to 2 commands") }
        return (replies[0], replies[1])
    }

    private static func fcallCommand(_ function: String, keys: [RedisArgument], arguments: [RedisArgument]) -> [RedisArgument] {
        var command: [RedisArgument] = ["FCALL", RedisArgument(function), RedisArgument(keys.count)]
        command.append(contentsOf: keys)
        command.append(contentsOf: arguments)
        return command
    }

    private func callReloading(_ payload: RedisPayload, idempotent: Bool, durable: Bool) async throws -> RESPValue {
        do {
            return try await send(payload, idempotent: idempotent, durable: durable)
        } catch let error as RedisClientError where error.isFunctionNotFound && !functionLibraries.isEmpty {
            try await loadFunctionLibraries()
            return try await send(payload, idempotent: idempotent, durable: durable)
        }
    }

    /// Loads (or replaces) every library the client was given, on the server (in Cluster mode, on
    /// every primary).
    public func loadFunctionLibraries() async throws {
        if let cluster { return try await cluster.loadFunctionLibrariesEverywhere() }
        for library in functionLibraries {
            _ = try await send(library.loadCommand, idempotent: true)
        }
    }
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

extension RedisClientError {
    /// The server refused the command because it is not a writable primary (a failover happened or
    /// is under way); the command was not applied.
    var meansNotThePrimary: Bool {
        switch serverErrorPrefix {
        case "READONLY", "MASTERDOWN": true
        default: false
        }
    }

    /// Whether repeating the command cannot apply it twice.
    func isSafeToRetry(idempotent: Bool) -> Bool {
        switch code {
        case .connectionFailed, .notPrimary: return true  // never sent to a primary
        case .serverError: return meansNotThePrimary || serverErrorPrefix == "LOADING" || serverErrorPrefix == "NOREPLICAS"
        case .connectionClosed, .timeout: return idempotent  // may or may not have run
        default: return false
        }
    }

    /// Redis' answer to `FCALL` of a function it does not have.
    var isFunctionNotFound: Bool {
        code == .serverError && message.hasPrefix("ERR Function not found")
    }
}
