import NIOCore
import NIOPosix
import RedisClient
import RedisTestSupport
import Testing

@testable import SessionService

/// The transport's speed-up rests on this: a request's task runs on its HTTP connection's event
/// loop (``EventLoopTaskExecutor``), and the Redis client, built on the same group, answers it over
/// that loop's own Redis connection, so the request never changes thread.
@Suite struct EventLoopLocalityTests {
    @Test func aCommandFromAnEventLoopGoesOverThatLoopsOwnConnectionOfTheGroupGiven() async throws {
        let redis = try await RedisServer.start()
        // A group of the test's own, not the process-wide singleton: the client must use the group
        // it is given.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        let client = RedisClient.running(configuration: try RedisConfiguration(url: redis.url), eventLoopGroup: group)
        var connectionOfLoop: [Int64] = []
        for loop in group.makeIterator() {
            let ids = try await withTaskExecutorPreference(EventLoopTaskExecutor(loop)) {
                var ids: Set<Int64> = []
                for _ in 0..<10 {
                    #expect(loop.inEventLoop, "the task runs on its loop")
                    ids.insert(try #require(try await client.send("CLIENT", "ID").integer))
                }
                return ids
            }
            #expect(ids.count == 1, "every command from one loop went over one connection: \(ids)")
            connectionOfLoop.append(contentsOf: ids)
        }
        #expect(Set(connectionOfLoop).count == 3, "each loop has a connection of its own: \(connectionOfLoop)")
        #expect(try await client.send("INFO", "clients").string?.contains("connected_clients:3") == true)
        await client.shutdown()
        try await group.shutdownGracefully()
    }
}
