import Logging
import NIOCore
import Synchronization

/// Where a ``ConnectionSlot`` connects, and whom it tells what happened: the primary of the moment
/// (standalone or Sentinel, through ``PrimaryResolver``) or one cluster node.
struct ConnectionTarget: Sendable {
    /// The server to connect to now.
    let endpoint: @Sendable () async throws -> RedisEndpoint
    /// Whether the handshake must confirm with `ROLE` that the server is a primary.
    let confirmsPrimary: Bool
    /// A handshake succeeded with this server.
    let connected: @Sendable (RedisEndpoint) -> Void
    /// A connect to this server failed, or a connection to it closed.
    let lost: @Sendable (RedisEndpoint) -> Void
}

/// One of the client's connections: made lazily on first use, shared while it lives, made again
/// after it breaks, with capped exponential backoff between failed attempts.
///
/// While a connect is under way every caller waits for that same attempt. While backing off after a
/// failure, callers fail at once with the failure's error rather than queueing behind a dead server.
final class ConnectionSlot: Sendable {
    private enum State {
        case idle(failures: Int)
        case connecting(EventLoopFuture<RedisConnection>)
        case connected(RedisConnection)
        case backingOff(until: NIODeadline, failures: Int, error: RedisClientError)
        case shutDown
    }

    private enum Action {
        case use(RedisConnection)
        case wait(EventLoopFuture<RedisConnection>)
        case start(EventLoopPromise<RedisConnection>, failures: Int)
        case fail(RedisClientError)
    }

    private let state = Mutex<State>(.idle(failures: 0))
    let eventLoop: any EventLoop
    private let configuration: RedisConfiguration
    private let functionLibraries: [RedisFunctionLibrary]
    private let target: ConnectionTarget
    private let background: BackgroundWork
    private let logger: Logger

    init(
        eventLoop: any EventLoop, configuration: RedisConfiguration, functionLibraries: [RedisFunctionLibrary],
        target: ConnectionTarget, background: BackgroundWork, logger: Logger
    ) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.functionLibraries = functionLibraries
        self.target = target
        self.background = background
        self.logger = logger
    }

    /// A live connection, connecting first if there is none.
    /// - Throws: the connect error (`connectionFailed`, `authenticationFailed`, ...) or `shutDown`.
    func connection() async throws -> RedisConnection {
        let action = state.withLock { state -> Action in
            var failures = 0
            switch state {
            case .connected(let connection):
                if connection.isActive { return .use(connection) }
            case .connecting(let future):
                return .wait(future)
            case .backingOff(let until, let previousFailures, let error):
                if NIODeadline.now() < until { return .fail(error) }
                failures = previousFailures
            case .idle(let previousFailures):
                failures = previousFailures
            case .shutDown:
                return .fail(.shutDown)
            }
            let promise = eventLoop.makePromise(of: RedisConnection.self)
            state = .connecting(promise.futureResult)
            return .start(promise, failures: failures)
        }
        switch action {
        case .use(let connection):
            return connection
        case .wait(let future):
            return try await future.get()
        case .fail(let error):
            throw error
        case .start(let promise, let failures):
            // The client's background work, so that cancelling the caller who happened to start it
            // cannot abort a connect that other callers are waiting for.
            if !background.start({ await self.establish(promise, failures: failures) }) {
                state.withLock { $0 = .shutDown }
                promise.fail(RedisClientError.shutDown)
            }
            return try await promise.futureResult.get()
        }
    }

    /// A failover to `primary` was announced: closes the slot's connection if it talks to another
    /// server, and ends a backoff at once (the failures it follows were the old primary's), so the
    /// next caller connects to the new primary without waiting.
    func follow(switchTo primary: RedisEndpoint) {
        let stale = state.withLock { state -> RedisConnection? in
            switch state {
            case .connected(let connection) where connection.endpoint != primary:
                return connection
            case .backingOff(_, let failures, _):
                state = .idle(failures: failures)
                return nil
            default:
                return nil
            }
        }
        stale?.closeSoon()
    }

    /// The slot's connection if it is connected and alive right now; never connects.
    var liveConnection: RedisConnection? {
        state.withLock { state in
            if case .connected(let connection) = state, connection.isActive { return connection }
            return nil
        }
    }

    private func establish(_ promise: EventLoopPromise<RedisConnection>, failures: Int) async {
        var endpoint: RedisEndpoint?
        do {
            let primary = try await target.endpoint()
            endpoint = primary
            let connection = try await RedisConnection.connect(
                to: configuration.pointing(to: primary), on: eventLoop, functionLibraries: functionLibraries, confirmPrimary: target.confirmsPrimary
            )
            target.connected(primary)
            let accepted = state.withLock { state -> Bool in
                if case .shutDown = state { return false }
                state = .connected(connection)
                return true
            }
            guard accepted else {
                await connection.close()
                promise.fail(RedisClientError.shutDown)
                return
            }
            if failures > 0 {
                logger.info("reconnected to Redis", metadata: ["redis": "\(primary)"])
            }
            connection.closeFuture.whenComplete { _ in
                let wasCurrent = self.state.withLock { state -> Bool in
                    guard case .connected(let current) = state, current === connection else { return false }
                    state = .idle(failures: 0)
                    return true
                }
                if wasCurrent {
                    self.target.lost(primary)
                    self.logger.warning("connection to Redis closed", metadata: ["redis": "\(primary)"])
                }
            }
            promise.succeed(connection)
        } catch {
            if let endpoint { target.lost(endpoint) }
            let clientError = error as? RedisClientError ?? .connectionFailed("\(error)")
            let delay = backoff(afterFailures: failures)
            state.withLock { state in
                if case .shutDown = state { return }
                state = .backingOff(until: .now() + delay, failures: failures + 1, error: clientError)
            }
            if failures == 0 {
                logger.warning("cannot connect to Redis", metadata: ["error": "\(clientError)"])
            }
            promise.fail(clientError)
        }
    }

    /// `initial × 2^failures`, capped at the configured maximum.
    private func backoff(afterFailures failures: Int) -> TimeAmount {
        let initial = TimeAmount(configuration.reconnectBackoffInitial).nanoseconds
        let maximum = TimeAmount(configuration.reconnectBackoffMaximum).nanoseconds
        let factor: Int64 = failures >= 30 ? Int64(1) << 30 : Int64(1) << failures
        let (scaled, overflow) = initial.multipliedReportingOverflow(by: factor)
        return .nanoseconds(overflow ? maximum : min(scaled, maximum))
    }

    /// Closes the connection and refuses all further use.
    func shutdown() async {
        let current = state.withLock { state -> RedisConnection? in
            defer { state = .shutDown }
            if case .connected(let connection) = state { return connection }
            return nil
        }
        await current?.close()
    }
}
