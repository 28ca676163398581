import RedisClient

extension RedisClient {
    /// A client whose background work (``RedisClient/run()``: a Cluster's slot-map refreshes,
    /// Sentinel's announcements) runs until its `shutdown()`, for tests that use a client directly.
    public static func running(configuration: RedisConfiguration, functionLibraries: [RedisFunctionLibrary] = []) -> RedisClient {
        let client = RedisClient(configuration: configuration, functionLibraries: functionLibraries)
        Task { await client.run() }
        return client
    }
}
