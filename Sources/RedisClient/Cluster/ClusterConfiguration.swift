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
        let entries = list.split(separator: ",").filter { !$0.allSatisfy(\.isWhitespace) }
        guard !entries.isEmpty else { throw RedisClientError.invalidURL("no cluster seed node given") }
        return try entries.map { try RedisEndpoint(parsing: $0) }
    }
}
