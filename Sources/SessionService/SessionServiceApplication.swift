import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOPosix
import RedisClient
import ServiceLifecycle
import UnixSignals

/// Builds the sessiond HTTP application from a configuration: the Redis client, the session store
/// and the routes. The executable only parses configuration and runs what this returns.
public enum SessionServiceApplication {
    /// - Parameter onServerRunning: called with the bound port once the server listens (tests use port 0).
    public static func build(
        configuration: SessionServiceConfiguration,
        logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> SessionServer {
        let (redis, connection, metrics, redisAddress, background) = try connectionSetup(configuration: configuration, logger: logger)
        let fleet = background.fleet

        // Connections are limited below the descriptors, never by running out of them: out of
        // descriptors, NIO's listening socket retries accept() in a busy loop (its back-off does not
        // take hold when the first accept of a read fails), and Redis could not be reconnected.
        let descriptors = DescriptorLimit.raise()
        let connectionCeiling = DescriptorLimit.connectionLimit(descriptors: descriptors.now)
        var maxConnections = configuration.maxConnections > 0 ? configuration.maxConnections : connectionCeiling
        if maxConnections > connectionCeiling {
            logger.warning(
                "SESSIOND_MAX_CONNECTIONS is more than the open-file limit allows; using the most it allows",
                metadata: ["max_connections": "\(maxConnections)", "descriptor_limit": "\(descriptors.now)", "using": "\(connectionCeiling)"]
            )
            maxConnections = connectionCeiling
        }
        logger.info(
            "file descriptors and connections",
            metadata: [
                "descriptor_limit": "\(descriptors.now)", "descriptor_limit_at_start": "\(descriptors.before)",
                "descriptor_hard_limit": "\(descriptors.hard)", "max_connections": "\(maxConnections)",
            ]
        )
        let connectionLimit = ConnectionLimit(maximum: maxConnections, logger: logger, metricsFactory: metrics.factory)
        let server = connection.server(
            configuration: ServerConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: "sessiond",
                availableConnectionsDelegate: connectionLimit
            ),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("sessiond listening", metadata: ["address": "\(configuration.host):\(port)", "redis": "\(redisAddress)"])
                await onServerRunning(port)
            },
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger
        )
        // Shut down in reverse order: the drain first, then the HTTP server, then Redis.
        return SessionServer(
            services: [
                RedisClientService(client: redis, logger: logger), fleet,
            ] + background.events + [
                StartsOnceLayoutKnown(service: server, layout: fleet.layout, limit: configuration.redisTimeout),
                DrainService(drain: connection.drain, delay: configuration.shutdownDelay, logger: logger),
            ],
            maximumShutdownDuration: configuration.shutdownDelay + .seconds(30), logger: logger
        )
    }

    /// Everything but the listening socket: the Redis client (whose `run()` the caller owns), the
    /// setup every HTTP connection gets (its handlers, the routes, the store behind them), the
    /// metrics they record, where sessions are kept as the start-up line and /readyz name it
    /// (never a password), and the background work (the fleet; the event log's tail and the expiry
    /// sweeper when events are on). The HTTP fuzzer (Fuzz/HTTP) drives the same connection setup
    /// with bytes.
    static func connectionSetup(
        configuration: SessionServiceConfiguration, logger: Logger
    ) throws -> (redis: RedisClient, connection: SessionHTTPChannel, metrics: ServiceMetrics, redisAddress: String, background: Background) {
        let metrics = ServiceMetrics()
        let (redis, redisAddress, keys) = try redisSetup(configuration: configuration, logger: logger, metricsFactory: metrics.factory)
        let drain = Drain()
        let layout = ActiveLayout()
        let events = configuration.eventsRetention > .zero
            ? SessionEvents(
                redis: redis, keys: keys, retention: configuration.eventsRetention, logger: logger, metricsFactory: metrics.factory,
                stopping: { drain.isDraining }
            )
            : nil
        // Several instances may share a name (one host, or a name set twice): the fleet and the
        // sweeper's leases tell them apart by a suffix of this process's own.
        let instance = "\(configuration.instance)#\(Hex.encode((0..<4).map { _ in UInt8.random(in: 0...255) }))"
        let store = SessionStore(
            redis: redis,
            settings: .init(
                idleTimeout: configuration.idleTimeout, absoluteTimeout: configuration.absoluteTimeout,
                touchInterval: configuration.touchInterval, maxSessionsPerUser: configuration.maxSessionsPerUser,
                // A write is retried only within the failover deadline: a minute (or twice the
                // deadline) outlasts every retry.
                tombstoneRetention: max(.seconds(60), configuration.failoverTimeout * 2),
                rotationGrace: configuration.rotationGrace, reusePolicy: configuration.rotationReuse,
                limits: SessionLimits(
                    maxDataBytes: configuration.maxSessionBytes, maxAttributes: configuration.maxAttributes,
                    maxNameBytes: configuration.maxAttributeNameBytes
                ),
                keys: keys, eventRetention: configuration.eventsRetention
            ),
            layout: layout, events: events, logger: logger, metricsFactory: metrics.factory
        )
        let fleet = FleetService(fleet: FleetRegistry(redis: redis, keys: keys, instance: instance, logger: logger), layout: layout, logger: logger)
        var eventServices: [any Service] = []
        if let events {
            eventServices = [
                EventTailService(events: events),
                EventSweeper(events: events, layout: layout, instance: instance, logger: logger, metricsFactory: metrics.factory),
            ]
        }
        let router = Router(context: SessionRequestContext.self)
        router.add(middleware: ResponseHeadersMiddleware(instance: configuration.instance))
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        let routes = APIRoutes()
        router.add(middleware: ErrorMiddleware(routes: routes))
        HealthController(
            store: store, instance: configuration.instance, layout: layout,
            requiredReplicas: configuration.durability == .replicated ? configuration.durabilityReplicas : 0,
            redisAddress: redisAddress,
            openAPIDocument: try HealthController.loadOpenAPIDocument(), metrics: metrics, drain: drain
        ).addRoutes(to: router)

        let v1 = router.group("v1")
        if !configuration.apiKeys.isEmpty {
            v1.add(middleware: APIKeyMiddleware(keys: configuration.apiKeys))
        }
        SessionController(store: store, body: JSONBody(limit: configuration.maxBodyBytes)).addRoutes(to: v1)
        EventsController(events: events).addRoutes(to: v1)
        AdminController(store: store).addRoutes(to: v1)
        AuthController(store: store, cookieName: configuration.cookieName, attributeNames: configuration.authAttributes)
            .addRoutes(to: v1)
        routes.load(from: router)

        let connection = SessionHTTPChannel(
            responder: router.buildResponder(), serverName: "sessiond", bodyLimit: configuration.maxBodyBytes,
            idleTimeout: configuration.connectionIdleTimeout, drain: drain
        )
        return (redis, connection, metrics, redisAddress, Background(fleet: fleet, events: eventServices))
    }

    /// What runs beside the HTTP server.
    struct Background {
        let fleet: FleetService
        /// The event log's tail and the expiry sweeper (empty when events are off).
        let events: [any Service]
    }

    /// The Redis client for `configuration` (its `run()` is the caller's), where sessions are kept as
    /// the start-up line and /readyz name it (never a password), and the key names.
    static func redisSetup(
        configuration: SessionServiceConfiguration, logger: Logger, metricsFactory: (any MetricsFactory)? = nil
    ) throws -> (redis: RedisClient, redisAddress: String, keys: SessionKeys) {
        try configuration.validate()
        var redisConfiguration = try RedisConfiguration(url: configuration.redisURL)
        redisConfiguration.commandTimeout = configuration.redisTimeout
        redisConfiguration.connectTimeout = configuration.redisTimeout
        redisConfiguration.failoverTimeout = configuration.failoverTimeout
        redisConfiguration.tls = configuration.redisTLS()
        if let tls = redisConfiguration.tls, !tls.verifyCertificates {
            logger.warning("TLS to Redis does NOT verify certificates (SESSIOND_REDIS_TLS_VERIFY=false): any server, or anyone in the path, can pose as Redis and read every session")
        }
        if configuration.durability == .replicated {
            redisConfiguration.durability = RedisDurability(
                replicas: configuration.durabilityReplicas, timeout: configuration.durabilityTimeout
            )
        }
        if !configuration.sentinels.isEmpty {
            redisConfiguration.sentinel = SentinelConfiguration(
                sentinels: configuration.sentinels, masterName: configuration.sentinelMaster,
                username: configuration.sentinelUsername, password: configuration.sentinelPassword
            )
        }
        if !configuration.redisCluster.isEmpty {
            redisConfiguration.cluster = ClusterConfiguration(seeds: configuration.redisCluster)
        }
        var redisLogger = logger
        redisLogger[metadataKey: "component"] = "redis"
        // One event-loop group for the HTTP server and the Redis client: a request's task runs on
        // its connection's loop and the client answers it over that same loop's Redis connection.
        let eventLoopGroup = MultiThreadedEventLoopGroup.singleton
        let redis = RedisClient(
            configuration: redisConfiguration, functionLibraries: [SessionFunctions.library], eventLoopGroup: eventLoopGroup,
            logger: redisLogger, metricsFactory: metricsFactory
        )
        let redisAddress = redisConfiguration.cluster.map { "cluster (seeds \($0.seeds.map(\.description).joined(separator: ",")))" }
            ?? redisConfiguration.sentinel.map { "sentinel master '\($0.masterName)' (sentinels \($0.sentinels.map(\.description).joined(separator: ",")))" }
            ?? "\(redisConfiguration.host):\(redisConfiguration.port)"

        return (redis, redisAddress, SessionKeys(prefix: configuration.keyPrefix, outboxPerBucket: redisConfiguration.cluster != nil))
    }
}

/// A built sessiond: its HTTP server and its Redis client, run together until a graceful shutdown.
public struct SessionServer: Sendable {
    /// In start order; they stop in the reverse order (the server stops taking requests, then the
    /// Redis connections close).
    let services: [any Service]
    /// The drain and the requests in flight together; past it, what is left is cancelled.
    let maximumShutdownDuration: Duration
    let logger: Logger

    /// Serves until one of `gracefulShutdownSignals` arrives (or the task is cancelled), then stops
    /// taking connections, lets the requests in progress finish, and closes Redis.
    public func runService(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: gracefulShutdownSignals, logger: logger)
        configuration.maximumGracefulShutdownDuration = maximumShutdownDuration
        let group = ServiceGroup(configuration: configuration)
        logger.info("sessiond starting")
        defer { logger.info("sessiond stopped") }
        try await group.run()
    }
}

/// Runs the Redis client's background work, and closes its connections when the application shuts
/// down (after the HTTP server, which stops first, has answered the requests in progress).
struct RedisClientService: Service {
    let client: RedisClient
    let logger: Logger

    func run() async throws {
        async let background: Void = client.run()
        try? await gracefulShutdown()
        // The HTTP server has stopped taking requests and answered those in progress.
        logger.info("closing the Redis connections")
        await client.shutdown()
        await background
    }
}

extension SessionServiceApplication {
    /// `sessiond --finalize-layout`: with the server's own configuration, makes the newest storage
    /// layout active (see ``FleetRegistry/finalize()``) and returns it.
    /// - Throws: why not (a live instance still needs an older layout; Redis unreachable).
    public static func finalizeLayout(configuration: SessionServiceConfiguration, logger: Logger) async throws -> Int {
        let (redis, _, keys) = try redisSetup(configuration: configuration, logger: logger)
        return try await withThrowingTaskGroup(of: Int?.self) { group in
            group.addTask {
                await redis.run()
                return nil
            }
            defer { group.cancelAll() }
            let registry = FleetRegistry(redis: redis, keys: keys, instance: "finalize-layout", logger: logger)
            let active: Int
            do {
                active = try await registry.finalize()
            } catch {
                await redis.shutdown()
                throw error
            }
            await redis.shutdown()
            return active
        }
    }
}
