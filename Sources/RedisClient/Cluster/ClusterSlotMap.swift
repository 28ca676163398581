/// Which primary serves each of a Redis Cluster's 16384 slots, as `CLUSTER SLOTS` described it and
/// `MOVED` redirects corrected it since. A value: the router swaps whole maps under its lock.
public struct ClusterSlotMap: Sendable, Equatable {
    /// A primary, the replicas `CLUSTER SLOTS` listed with it, and the slot ranges it serves.
    public struct Shard: Sendable, Equatable {
        public var primary: RedisEndpoint
        public var replicas: [RedisEndpoint]
    }

    /// The shards that serve at least one slot (or did when the map was made).
    public private(set) var shards: [Shard] = []
    /// Slot → index into `shards`; -1 where no node serves the slot.
    private var owners = [Int16](repeating: -1, count: HashSlot.count)

    /// An empty map: no slot is served.
    public init() {}

    /// Parses a `CLUSTER SLOTS` reply got from `source`: `[start, end, [host, port, id, …], replicas…]`
    /// per range. An empty host means the node asked (`source`); a host of `?` is unusable and is
    /// left out (its slots stay unserved).
    /// - Throws: ``RedisClientError`` `protocolError` for a reply of another shape.
    public init(clusterSlots reply: RESPValue, from source: RedisEndpoint) throws(RedisClientError) {
        guard let ranges = reply.array else { throw .protocolError("CLUSTER SLOTS did not answer an array") }
        for range in ranges {
            guard let fields = range.array, fields.count >= 3, let start = fields[0].integer, let end = fields[1].integer,
                0 <= start, start <= end, end < HashSlot.count
            else {
                throw .protocolError("CLUSTER SLOTS answered a range of an unexpected shape")
            }
            guard let primary = Self.endpoint(fields[2], source: source) else { continue }
            let replicas = fields.dropFirst(3).compactMap { Self.endpoint($0, source: source) }
            let index = shardIndex(primary, replicas: replicas)
            for slot in Int(start)...Int(end) { owners[slot] = Int16(index) }
        }
    }

    private static func endpoint(_ node: RESPValue, source: RedisEndpoint) -> RedisEndpoint? {
        guard let fields = node.array, fields.count >= 2, let port = fields[1].integer, (1...65535).contains(port) else { return nil }
        let host = fields[0].string ?? ""
        if host == "?" { return nil }
        return RedisEndpoint(host: host.isEmpty ? source.host : host, port: Int(port))
    }

    /// The index of `primary`'s shard, added when new.
    private mutating func shardIndex(_ primary: RedisEndpoint, replicas: [RedisEndpoint] = []) -> Int {
        if let index = shards.firstIndex(where: { $0.primary == primary }) {
            for replica in replicas where !shards[index].replicas.contains(replica) { shards[index].replicas.append(replica) }
            return index
        }
        shards.append(Shard(primary: primary, replicas: replicas))
        return shards.count - 1
    }

    /// The primary serving `slot`, if any.
    public func primary(forSlot slot: Int) -> RedisEndpoint? {
        let index = owners[slot]
        return index < 0 ? nil : shards[Int(index)].primary
    }

    /// How many slots some primary serves (16384 when the whole key space is covered).
    public var coveredSlots: Int { owners.count(where: { $0 >= 0 }) }

    /// The primaries that serve at least one slot, in shard order.
    public var primaries: [RedisEndpoint] {
        var used = [Bool](repeating: false, count: shards.count)
        for owner in owners where owner >= 0 { used[Int(owner)] = true }
        return shards.indices.filter { used[$0] }.map { shards[$0].primary }
    }

    /// Every node the map names: primaries first, then replicas.
    public var nodes: [RedisEndpoint] {
        primaries + shards.flatMap(\.replicas).filter { !primaries.contains($0) }
    }

    /// The slot ranges `primary` serves, ascending.
    public func slotRanges(of primary: RedisEndpoint) -> [ClosedRange<Int>] {
        guard let index = shards.firstIndex(where: { $0.primary == primary }).map({ Int16($0) }) else { return [] }
        var ranges: [ClosedRange<Int>] = []
        var start: Int?
        for slot in 0...HashSlot.count {
            let owned = slot < HashSlot.count && owners[slot] == index
            if owned, start == nil { start = slot }
            if !owned, let first = start {
                ranges.append(first...(slot - 1))
                start = nil
            }
        }
        return ranges
    }

    /// The replicas listed with `primary`.
    public func replicas(of primary: RedisEndpoint) -> [RedisEndpoint] {
        shards.first { $0.primary == primary }?.replicas ?? []
    }

    /// Follows `MOVED slot endpoint` without waiting for a new map: a replica of the slot's own shard
    /// named there was promoted, so it takes over the whole shard; any other node takes the one slot.
    public mutating func applyMoved(slot: Int, to endpoint: RedisEndpoint) {
        let current = owners[slot]
        if current >= 0 {
            let index = Int(current)
            if shards[index].primary == endpoint { return }
            if let position = shards[index].replicas.firstIndex(of: endpoint),
                !shards.contains(where: { $0.primary == endpoint })
            {
                let old = shards[index].primary
                shards[index].replicas[position] = old
                shards[index].primary = endpoint
                return
            }
        }
        owners[slot] = Int16(shardIndex(endpoint))
    }
}
