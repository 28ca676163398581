/// Where to find a Redis Cluster: the seed nodes asked for the slot map.
public struct ClusterConfiguration: Sendable, Hashable {
    /// Nodes asked for the slot map (`CLUSTER SLOTS`); any one that answers is enough, a replica
    /// included. They are never replaced by the addresses the cluster announces.
    public var seeds: [RedisEndpoint]

    public init(seeds: [RedisEndpoint]) {
        self.seeds = seeds
    }

    /// Parses a comma-separated `host:port` list.
    /// - Throws: ``RedisClientError`` `invalidURL` naming the bad entry, or saying the list is empty.
    public static func seeds(parsing list: String) throws -> [RedisEndpoint] {
        try RedisEndpoint.list(parsing: list, missing: "cluster seed node")
    }
}
