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
        let client = RedisClient(configuration: configuration, functionLibraries: functionLibraries, eventLoopGroup: eventLoopGroup)
        Task { await client.run() }
        return client
    }
}
