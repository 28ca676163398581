import NIOCore
import NIOPosix
import RedisClient

extension RedisClient {
    /// A client whose background work (``RedisClient/run()``: its connects, lookups and
    /// refreshes) runs until its `shutdown()`, for tests that use a client directly.
    public static func running(
        configuration: RedisConfiguration, functionLibraries: [RedisFunctionLibrary] = [],
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) -> RedisClient {
        // At the suite's start every test starts servers and clients at once, and a 2 s loopback
        // connect has timed out there: a test's own client connects within 10 s (or its own, longer).
        var configuration = configuration
        configuration.connectTimeout = max(configuration.connectTimeout, .seconds(10))
        let client = RedisClient(configuration: configuration, functionLibraries: functionLibraries, eventLoopGroup: eventLoopGroup)
        Task { await client.run() }
        return client
    }
}
