import Logging
import NIOCore
import Synchronization

/// Every command goes to one primary: the configured server, or the one the sentinels name
/// (``PrimaryResolver``). One pipelined connection per event loop (``ConnectionSlot``), each
/// confirmed with `ROLE` in Sentinel mode and dropped when a failover is announced.
final class PrimaryTopology: RedisTopology {
    private let slots: [ConnectionSlot]
    private let nextSlot = Atomic<Int>(0)
    let resolver: PrimaryResolver

    init(
        configuration: RedisConfiguration, loops: [any EventLoop], functionLibraries: [RedisFunctionLibrary],
        background: BackgroundWork, logger: Logger, metrics: RedisClientMetrics?
    ) {
        let resolver = PrimaryResolver(configuration: configuration, loops: loops, background: background, logger: logger, metrics: metrics)
        let target = ConnectionTarget(
            endpoint: { try await resolver.primary().0 }, confirmsPrimary: resolver.isSentinelMode,
            connected: { resolver.confirmed($0) }, lost: { resolver.invalidate($0) }
        )
        self.resolver = resolver
        self.slots = loops.map { loop in
            ConnectionSlot(
                eventLoop: loop, configuration: configuration, functionLibraries: functionLibraries, target: target,
                background: background, logger: logger
            )
        }
    }

    var deployment: CommandAttempt.Deployment { resolver.isSentinelMode ? .sentinel : .server }

    /// Follows the sentinels' failover announcements until cancelled: connections to a primary
    /// being left are dropped at once.
    func run() async {
        let slots = self.slots
        await resolver.watchSwitches { primary in
            for slot in slots { slot.follow(switchTo: primary) }
        }
    }

    /// The caller's event loop's connection (so its command and reply never change thread), else
    /// the slots in turn; when that slot cannot connect, any live one (the command was not sent).
    func connection(forSlot slot: Int?) async throws -> RedisConnection {
        let own = slots.first { $0.eventLoop.inEventLoop } ?? slots[nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue % slots.count]
        do {
            return try await own.connection()
        } catch let error as RedisClientError where error.code != .shutDown {
            guard let live = slots.lazy.compactMap(\.liveConnection).first else { throw error }
            return live
        }
    }

    func connection(to endpoint: RedisEndpoint) async throws -> RedisConnection {
        // No redirects reach a primary topology (CommandAttempt follows them in Cluster mode only).
        try await connection(forSlot: nil)
    }

    func noticed(_ notice: CommandAttempt.Notice, on connection: RedisConnection?) async {
        switch notice {
        case .unreachable(let endpoint):
            resolver.invalidate(endpoint)
        case .notPrimary(let endpoint):
            // A replica now, or cut off from its primary: stop using it and ask again.
            resolver.invalidate(endpoint)
            await connection?.close()
        case .clusterDown:
            break
        }
    }

    func moved(slot: Int, to endpoint: RedisEndpoint) {}

    func shutdown() async {
        for slot in slots { await slot.shutdown() }
    }
}
