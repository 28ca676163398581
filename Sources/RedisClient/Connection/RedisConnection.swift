import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// One TCP connection to Redis, shared by any number of concurrent callers (pipelined).
///
/// Created by ``connect(to:on:functionLibraries:)``, which also runs the handshake. Once the
/// channel closes the connection is dead for good; ``RedisClient`` makes a new one.
final class RedisConnection: Sendable {
    private let channel: any Channel
    /// The server this connection talks to.
    let endpoint: RedisEndpoint
    /// Numbers requests in the order they enter the channel (held while writing, so the numbers
    /// follow the channel's order), and counts writes handed to the event loop that it has not
    /// made yet: while there are any, a writer on the loop queues behind them instead of writing
    /// at once, which would put its request ahead of theirs with a higher number (and a `WAIT`
    /// ahead of a write it was counted as covering).
    private let sendOrder = Mutex<(sequence: UInt64, queuedWrites: Int)>((0, 0))
    /// The latest `WAIT` sent on this connection and its place in the send order.
    private let latestWait = Mutex<(sequence: UInt64, reply: EventLoopFuture<RESPValue>)?>(nil)

    private init(channel: any Channel, endpoint: RedisEndpoint) {
        self.channel = channel
        self.endpoint = endpoint
    }

    /// Whether the connection can still carry commands.
    var isActive: Bool { channel.isActive }

    /// Completes when the connection has closed, for whatever reason.
    var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Connects on `eventLoop` to `configuration.host:port`, authenticates, selects the database,
    /// checks with `ROLE` that the server is a primary when `confirmPrimary`, and loads `functionLibraries`.
    /// - Throws: ``RedisClientError``: `connectionFailed` (refused, unreachable, connect timeout),
    ///   `authenticationFailed`, `notPrimary`, or the error of a failed handshake step.
    static func connect(
        to configuration: RedisConfiguration,
        on eventLoop: any EventLoop,
        functionLibraries: [RedisFunctionLibrary],
        confirmPrimary: Bool = false,
        onPush: (@Sendable (RESPValue) -> Void)? = nil
    ) async throws -> RedisConnection {
        let commandTimeout = TimeAmount(configuration.commandTimeout)
        let tls = try configuration.tls.map { tls throws(RedisClientError) in
            (context: try tls.makeContext(), serverName: tls.serverName(connectingTo: configuration.host))
        }
        let tlsHandshake = tls == nil ? nil : eventLoop.makePromise(of: Void.self)
        let channel: any Channel
        do {
            let connecting = ClientBootstrap(group: eventLoop)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls, let tlsHandshake {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverName))
                            try channel.pipeline.syncOperations.addHandler(TLSHandshakeHandler(promise: tlsHandshake))
                        }
                        try channel.pipeline.syncOperations.addHandler(RedisChannelHandler(commandTimeout: commandTimeout, onPush: onPush))
                    }
                }
                .connect(host: configuration.host, port: configuration.port)
            // A cancelled caller stops waiting at once (a host that drops SYNs would otherwise hold
            // it for the whole connect timeout); a connection made after that is closed.
            let connected = eventLoop.makePromise(of: (any Channel).self)
            connecting.cascade(to: connected)
            connecting.whenSuccess { channel in
                connected.futureResult.whenFailure { _ in channel.close(promise: nil) }
            }
            channel = try await withTaskCancellationHandler {
                try await connected.futureResult.get()
            } onCancel: {
                connected.fail(CancellationError())
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw RedisClientError.connectionFailed(
                "cannot connect to Redis at \(configuration.host):\(configuration.port): \(error)"
            )
        }
        if let tlsHandshake {
            try await waitForTLS(tlsHandshake, on: channel, configuration: configuration)
        }
        let connection = RedisConnection(channel: channel, endpoint: RedisEndpoint(host: configuration.host, port: configuration.port))
        do {
            try await connection.handshake(configuration: configuration, functionLibraries: functionLibraries, confirmPrimary: confirmPrimary)
        } catch let error as RedisClientError where error.code == .connectionClosed || error.code == .timeout {
            // No caller's command was sent: to the caller this server could not be connected to
            // (a TLS peer that refuses the client's certificate closes the connection here).
            try? await channel.close()
            throw RedisClientError.connectionFailed("the handshake with \(connection.endpoint) failed: \(error.message)")
        } catch {
            try? await channel.close()
            throw error
        }
        return connection
    }

    /// Waits, within the connect timeout, for the TLS handshake of a new connection; closes the
    /// connection and says why when it fails or never completes (a server that does not speak TLS
    /// on this port answers nothing a TLS client can read).
    private static func waitForTLS(_ handshake: EventLoopPromise<Void>, on channel: any Channel, configuration: RedisConfiguration) async throws {
        let timeout = channel.eventLoop.scheduleTask(in: TimeAmount(configuration.connectTimeout)) {
            handshake.fail(RedisClientError.connectionFailed(
                "the TLS handshake with \(configuration.host):\(configuration.port) did not complete within \(configuration.connectTimeout): is the server speaking TLS on this port?"
            ))
        }
        defer { timeout.cancel() }
        do {
            try await handshake.futureResult.get()
        } catch {
            try? await channel.close()
            if let error = error as? RedisClientError, error.code == .connectionFailed { throw error }
            throw RedisClientError.connectionFailed("the TLS handshake with \(configuration.host):\(configuration.port) failed: \(error)")
        }
    }

    private func handshake(configuration: RedisConfiguration, functionLibraries: [RedisFunctionLibrary], confirmPrimary: Bool) async throws {
        if let password = configuration.password {
            var arguments: [RedisArgument] = ["AUTH"]
            if let username = configuration.username { arguments.append(RedisArgument(username)) }
            arguments.append(RedisArgument(password))
            do {
                _ = try await send(arguments)
            } catch let error as RedisClientError where error.code == .serverError {
                throw RedisClientError.authenticationFailed("Redis refused the credentials: \(error.message)")
            }
        }
        if configuration.database != 0 {
            _ = try await send(["SELECT", RedisArgument(configuration.database)])
        }
        if confirmPrimary {
            // A sentinel's answer can be stale (an old primary keeps accepting writes for seconds
            // after a failover): only ROLE says what this server is now.
            let role = try await send(["ROLE"]).array?.first?.string
            guard role == "master" else {
                throw RedisClientError.notPrimary("\(endpoint) is a \(role ?? "server of unknown role"), not the primary")
            }
        }
        try await load(functionLibraries)
    }

    /// Loads (or replaces) each library on this connection's server.
    func load(_ functionLibraries: [RedisFunctionLibrary]) async throws {
        for library in functionLibraries {
            _ = try await send(.command(library.loadCommand))
        }
    }

    /// Connects to `configuration`'s server, sends one command and closes: for the questions a
    /// topology asks a node it does not keep a connection to (a sentinel, a cluster node for its
    /// slot map). Connect and reply each take at most `limit`, so a silent node cannot hold up a
    /// caller that others can answer.
    static func query(_ command: [RedisArgument], at configuration: RedisConfiguration, on eventLoop: any EventLoop, within limit: Duration) async throws -> RESPValue {
        var configuration = configuration
        configuration.connectTimeout = min(configuration.connectTimeout, limit)
        configuration.commandTimeout = min(configuration.commandTimeout, limit)
        let connection = try await connect(to: configuration, on: eventLoop, functionLibraries: [])
        do {
            let reply = try await connection.send(.command(command))
            await connection.close()
            return reply
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Sends one command (or a `MULTI` block, see ``RedisPayload``) and waits for its reply.
    /// - Parameters:
    ///   - asking: Redis Cluster's `ASK`: `ASKING` goes right before the payload, in one write, so
    ///     that no other caller's command can come between them (Redis forgets `ASKING` after the
    ///     next command, but not inside a `MULTI` block).
    ///   - durability: the reply is returned once this many replicas have the write (group commit:
    ///     see ``awaitReplication(after:_:)``).
    /// - Throws: ``RedisClientError`` (`serverError` for an error reply, `timeout`, `connectionClosed`,
    ///   `protocolError`, `invalidCommand`, `durabilityTimeout`) or `CancellationError` when the
    ///   caller is cancelled.
    func send(_ payload: RedisPayload, asking: Bool = false, durability: RedisDurability? = nil) async throws -> RESPValue {
        let (reply, sequence) = try await sendNumbered(payload, asking: asking)
        if let durability { try await awaitReplication(after: sequence, durability) }
        return reply
    }

    /// Sends one command and waits for its reply.
    func send(_ arguments: [RedisArgument]) async throws -> RESPValue {
        try await send(.command(arguments))
    }

    private func sendNumbered(_ payload: RedisPayload, asking: Bool = false) async throws -> (reply: RESPValue, sequence: UInt64) {
        try Task.checkCancellation()
        let (promise, sequence) = try enqueue(payload, asking: asking)
        let reply = try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            // The command keeps its place in the handler's FIFO; its reply will be dropped there.
            promise.fail(CancellationError())
        }
        return (try payload.result(of: reply, afterAsking: asking), sequence)
    }

    /// Encodes the unit (after `ASKING`, in the same buffer, when `asking`: nothing can come
    /// between them), writes it into the channel and numbers it, atomically.
    private func enqueue(_ payload: RedisPayload, asking: Bool = false) throws -> (EventLoopPromise<RESPValue>, UInt64) {
        var buffer = channel.allocator.buffer(capacity: 64)
        let replies = try payload.encoded(into: &buffer, afterAsking: asking)
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        let request = RedisRequest(encoded: buffer, promise: promise, replies: replies)
        let sequence = sendOrder.withLock { order -> UInt64 in
            order.sequence += 1
            if channel.eventLoop.inEventLoop && order.queuedWrites == 0 {
                write(request)
            } else {
                order.queuedWrites += 1
                channel.eventLoop.execute {
                    self.sendOrder.withLock { order in
                        order.queuedWrites -= 1
                        self.write(request)
                    }
                }
            }
            return order.sequence
        }
        return (promise, sequence)
    }

    /// A write into a channel that has already closed never reaches the handler, so nothing would
    /// ever complete the reply promise: the write's own failure fails it.
    private func write(_ request: RedisRequest) {
        let written = channel.eventLoop.makePromise(of: Void.self)
        let promise = request.promise
        written.futureResult.whenFailure { error in
            promise.fail(RedisClientError.connectionClosed("the connection to Redis is closed: \(error)"))
        }
        channel.write(request, promise: written)
    }

    /// Returns once `durability.replicas` replicas have the command numbered `sequence` (and
    /// everything before it on this connection).
    ///
    /// Group commit: `WAIT` covers every write sent before it on its connection, so a caller joins
    /// the latest `WAIT` when that one was sent after its write, and sends a new one otherwise.
    /// - Throws: `durabilityTimeout` when fewer replicas acknowledged within the timeout.
    private func awaitReplication(after sequence: UInt64, _ durability: RedisDurability) async throws {
        let milliseconds = max(1, TimeAmount(durability.timeout).nanoseconds / 1_000_000)
        let wait = try latestWait.withLock { latest -> EventLoopFuture<RESPValue> in
            if let latest, latest.sequence > sequence { return latest.reply }
            let (promise, waitSequence) = try enqueue(.command(["WAIT", RedisArgument(durability.replicas), RedisArgument(milliseconds)]))
            latest = (waitSequence, promise.futureResult)
            return promise.futureResult
        }
        let acknowledged = try await wait.get().integer ?? 0
        guard acknowledged >= durability.replicas else {
            throw RedisClientError.durabilityTimeout(
                "the write is on the primary but only \(acknowledged) of \(durability.replicas) replicas acknowledged it within \(milliseconds) ms"
            )
        }
    }

    /// Closes the connection; pending commands fail with `connectionClosed`.
    func close() async {
        try? await channel.close()
    }

    /// Starts closing the connection without waiting for it (from code that cannot wait).
    func closeSoon() {
        channel.close(promise: nil)
    }
}
