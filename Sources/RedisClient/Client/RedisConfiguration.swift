import Foundation

/// Where the Redis server is and how to talk to it.
///
/// Built from a URL of the form `redis[s]://[[user]:password@]host[:port][/db]` (`rediss`: over
/// TLS); the timing knobs have production defaults and can be changed afterwards.
public struct RedisConfiguration: Sendable, Hashable {
    /// Host name or IP address of the server.
    public var host: String
    /// TCP port, 6379 unless the URL names one.
    public var port: Int
    /// ACL user for `AUTH user password`; `nil` uses `AUTH password` (the default user).
    public var username: String?
    /// Password for `AUTH`; `nil` sends no `AUTH`.
    public var password: String?
    /// Database number for `SELECT`; 0 sends no `SELECT`.
    public var database: Int
    /// TLS for every connection (the server, the sentinels, cluster nodes); `nil`: plain TCP.
    public var tls: RedisTLS?
    /// How long one command may wait for its reply before it fails with `timeout`.
    public var commandTimeout: Duration = .seconds(2)
    /// How long a TCP connect plus the handshake (AUTH, SELECT, function load) may take.
    public var connectTimeout: Duration = .seconds(2)
    /// Connections the client keeps; `nil` means one per event loop.
    public var connectionCount: Int?
    /// Wait before the first reconnect attempt after a failed connect; doubles on each further failure.
    public var reconnectBackoffInitial: Duration = .milliseconds(50)
    /// The longest wait between reconnect attempts.
    public var reconnectBackoffMaximum: Duration = .seconds(1)
    /// Sentinel mode: find the primary through these sentinels instead of `host:port` (which are
    /// then ignored); the credentials and database above still apply to the primary.
    public var sentinel: SentinelConfiguration?
    /// Cluster mode: route each command to the primary of its key's slot, found from these seeds
    /// (`host:port` are then ignored; the credentials still apply; the database must be 0).
    public var cluster: ClusterConfiguration?
    /// When set, a command sent with `durable: true` is acknowledged only after `WAIT` confirms that
    /// this many replicas have it (concurrent writes share their waits).
    public var durability: RedisDurability?
    /// In Sentinel and Cluster mode, how long a command may wait for a failover (or a slot
    /// migration) to finish, retrying what is safe to retry, before its error is returned. With one
    /// server, how long an idempotent command is retried over new connections after the server
    /// closed the one it was sent on.
    public var failoverTimeout: Duration = .seconds(5)

    /// A configuration for `host:port` with no credentials and database 0.
    public init(host: String, port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for TLS (with
    /// ``RedisTLS``'s defaults: the system's roots, the host's name; set ``tls`` further for more).
    /// Percent-encoded characters in the user and password are decoded.
    /// - Throws: ``RedisClientError`` with code `invalidURL`, saying which part is wrong.
    public init(url: String) throws {
        guard let components = URLComponents(string: url) else {
            throw RedisClientError.invalidURL("'\(Self.redacted(url))' is not a URL; expected redis://[user:password@]host:port[/db]")
        }
        let scheme = components.scheme?.lowercased()
        guard scheme == "redis" || scheme == "rediss" else {
            throw RedisClientError.invalidURL("the Redis URL must start with redis:// or rediss:// (TLS); unix sockets are not supported")
        }
        guard let host = components.host, !host.isEmpty else {
            throw RedisClientError.invalidURL("the Redis URL has no host")
        }
        let port = components.port ?? 6379
        guard (1...65535).contains(port) else {
            throw RedisClientError.invalidURL("the Redis URL's port \(port) is not between 1 and 65535")
        }
        var database = 0
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else {
                throw RedisClientError.invalidURL("the Redis URL's path must be a database number, not '\(path)'")
            }
            database = number
        }
        if components.query != nil || components.fragment != nil {
            throw RedisClientError.invalidURL("the Redis URL must not have a query or fragment")
        }
        let user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        let password = components.password
        if user != nil && password == nil {
            throw RedisClientError.invalidURL("the Redis URL names a user but no password (use redis://user:password@host)")
        }
        // IPv6 literals come back with their brackets; the socket layer wants the bare address.
        let bareHost = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.init(host: bareHost, port: port, username: user, password: password, database: database)
        if scheme == "rediss" { tls = RedisTLS() }
    }

    /// This configuration for the server at `endpoint` instead of `host:port`.
    func pointing(to endpoint: RedisEndpoint) -> RedisConfiguration {
        var configuration = self
        configuration.host = endpoint.host
        configuration.port = endpoint.port
        return configuration
    }

    /// The URL with any credentials replaced by `***`, safe for logs and error messages.
    public static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@"), let schemeEnd = url.range(of: "://") else { return url }
        return url[..<schemeEnd.upperBound] + "***" + url[at...]
    }
}

/// The replicated write mode: how many replicas must acknowledge a write, and how long to wait.
public struct RedisDurability: Sendable, Hashable {
    public var replicas: Int
    public var timeout: Duration

    public init(replicas: Int, timeout: Duration) {
        self.replicas = replicas
        self.timeout = timeout
    }
}
