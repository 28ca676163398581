/// A Redis Cluster node's answer that a key's slot is served elsewhere.
///
/// - `MOVED <slot> <host>:<port>`: the slot lives on that node now; the map is out of date.
/// - `ASK <slot> <host>:<port>`: the slot is being migrated and this key may already be on that
///   node; ask it once, preceded by `ASKING`, and leave the map as it is.
struct ClusterRedirect: Equatable, Sendable {
    enum Kind: String, Sendable {
        case moved
        case ask
    }

    let kind: Kind
    let slot: Int
    let endpoint: RedisEndpoint

    init(kind: Kind, slot: Int, endpoint: RedisEndpoint) {
        self.kind = kind
        self.slot = slot
        self.endpoint = endpoint
    }

    /// Parses a server error's message; `nil` when it is not a redirect. An empty host (a node that
    /// does not know its own address) means the node that answered, `answeredBy`.
    init?(_ error: RedisClientError, answeredBy: RedisEndpoint) {
        guard let prefix = error.serverErrorPrefix else { return nil }
        switch prefix {
        case "MOVED": kind = .moved
        case "ASK": kind = .ask
        default: return nil
        }
        let words = error.message.split(separator: " ")
        guard words.count == 3, let slot = Int(words[1]), (0..<HashSlot.count).contains(slot) else { return nil }
        let address = words[2]
        let endpoint: RedisEndpoint
        if address.hasPrefix(":") {
            guard let port = Int(address.dropFirst()), (1...65535).contains(port) else { return nil }
            endpoint = RedisEndpoint(host: answeredBy.host, port: port)
        } else {
            guard let parsed = try? RedisEndpoint(parsing: address) else { return nil }
            endpoint = parsed
        }
        self.slot = slot
        self.endpoint = endpoint
    }
}
