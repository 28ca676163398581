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

    /// A client for `configuration`. Nothing connects until the first command.
    public convenience init(
        configuration: RedisConfiguration,
        functionLibraries: [RedisFunctionLibrary] = [],
        logger: Logger = Logger(label: "RedisClient")
    ) {
        self.init(
            configuration: configuration, functionLibraries: functionLibraries,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger
        )
    }

    init(
        configuration: RedisConfiguration,
        functionLibraries: [RedisFunctionLibrary],
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) {
        let loops = Array(eventLoopGroup.makeIterator())
        let count = max(1, configuration.connectionCount ?? loops.count)
        self.slots = (0..<count).map { index in
            ConnectionSlot(
                eventLoop: loops[index % loops.count], configuration: configuration,
                functionLibraries: functionLibraries, logger: logger
            )
        }
        self.functionLibraries = functionLibraries
    }

    /// Sends one command and returns its reply.
    ///
    /// Commands from concurrent callers are pipelined; each caller gets its own reply.
    /// - Throws: ``RedisClientError`` — `serverError` for Redis' error reply (only this command fails),
    ///   `timeout`, `connectionClosed` (the command may or may not have run), `connectionFailed`,
    ///   `authenticationFailed`, `protocolError`, `invalidCommand`, `shutDown`; or `CancellationError`.
    public func send(_ arguments: [RedisArgument]) async throws -> RESPValue {
        let index = nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue
        let connection: RedisConnection
        do {
            connection = try await slots[index % slots.count].connection()
        } catch let error as RedisClientError where error.code != .shutDown {
            // This slot cannot connect (or is backing off); the command was not sent, so it is safe
            // to send it on another slot's live connection instead of failing it.
            guard let live = slots.lazy.compactMap(\.liveConnection).first else { throw error }
            connection = live
        }
        return try await connection.send(arguments)
    }

    /// Variadic form of ``send(_:)-([RedisArgument])``: `try await client.send("GET", "key")`.
    public func send(_ arguments: RedisArgument...) async throws -> RESPValue {
        try await send(arguments)
    }

    /// Closes every connection; later commands fail with `shutDown`.
    public func shutdown() async {
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
    public func fcall(_ function: String, keys: [RedisArgument] = [], arguments: [RedisArgument] = []) async throws -> RESPValue {
        var command: [RedisArgument] = ["FCALL", RedisArgument(function), RedisArgument(keys.count)]
        command.append(contentsOf: keys)
        command.append(contentsOf: arguments)
        do {
            return try await send(command)
        } catch let error as RedisClientError where error.isFunctionNotFound && !functionLibraries.isEmpty {
            try await loadFunctionLibraries()
            return try await send(command)
        }
    }

    /// Loads (or replaces) every library the client was given, on the server.
    public func loadFunctionLibraries() async throws {
        for library in functionLibraries {
            _ = try await send(library.loadCommand)
        }
    }
}

extension RedisClientError {
    /// Redis' answer to `FCALL` of a function it does not have.
    var isFunctionNotFound: Bool {
        code == .serverError && message.hasPrefix("ERR Function not found")
    }
}
