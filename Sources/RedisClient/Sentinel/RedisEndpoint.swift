import Foundation

/// A Redis server's address.
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (IPv6 as `[::1]:26379`).
    /// - Throws: ``RedisClientError`` `invalidURL` naming the bad entry.
    public init(parsing text: some StringProtocol) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let colon = trimmed.lastIndex(of: ":"), let port = Int(trimmed[trimmed.index(after: colon)...]),
            (1...65535).contains(port)
        else {
            throw RedisClientError.invalidURL("'\(trimmed)' is not host:port")
        }
        var host = String(trimmed[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw RedisClientError.invalidURL("'\(trimmed)' has no host") }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses a comma-separated `host:port` list; `missing` names what an empty list lacks.
    static func list(parsing list: String, missing: String) throws -> [RedisEndpoint] {
        let entries = list.split(separator: ",").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        guard !entries.isEmpty else { throw RedisClientError.invalidURL("no \(missing) given") }
        return try entries.map { try RedisEndpoint(parsing: $0) }
    }
}

/// Where to find the primary through Redis Sentinel.
public struct SentinelConfiguration: Sendable, Hashable {
    /// The sentinels to ask; any one that answers is enough.
    public var sentinels: [RedisEndpoint]
    /// The monitored master's name (`sentinel monitor <name> ...`).
    public var masterName: String
    /// ACL user for the sentinels, if they require one.
    public var username: String?
    /// Password for the sentinels (`requirepass` in sentinel.conf), if any.
    public var password: String?

    public init(sentinels: [RedisEndpoint], masterName: String, username: String? = nil, password: String? = nil) {
        self.sentinels = sentinels
        self.masterName = masterName
        self.username = username
        self.password = password
    }

    /// Parses a comma-separated `host:port` list.
    public static func endpoints(parsing list: String) throws -> [RedisEndpoint] {
        try RedisEndpoint.list(parsing: list, missing: "sentinel")
    }
}
