import Foundation
import Logging
import RedisClient

/// Everything sessiond can be configured with. Each setting is a flag and an environment variable
/// (`--idle-timeout` ↔ `SESSIOND_IDLE_TIMEOUT`); a flag wins over the variable, which wins over the
/// default here. ``settings`` declares each one once: the parser, `--help` and README's table are
/// made from it.
public struct SessionServiceConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 asks the OS for a free port (tests).
    public var port = 8080
    public var redisURL = "redis://127.0.0.1:6379"
    public var idleTimeout = Duration.seconds(1800)
    public var absoluteTimeout = Duration.seconds(86400)
    public var touchInterval = Duration.seconds(60)
    public var maxBodyBytes = 65536
    /// How long a graceful shutdown (SIGTERM) drains before it stops accepting (see ``Drain``).
    public var shutdownDelay = Duration.seconds(5)
    /// The most open HTTP connections (0: the descriptor limit less ``DescriptorLimit/reserve``).
    public var maxConnections = 0
    /// How long an HTTP connection may stay open with no request in progress before it is closed.
    public var connectionIdleTimeout = Duration.seconds(60)
    public var maxSessionsPerUser = 0
    /// The most bytes of data (attribute names and raw JSON values) one session may hold.
    public var maxSessionBytes = 256 << 10
    public var maxAttributes = 256
    public var maxAttributeNameBytes = 128
    /// How long the previous token keeps working after a rotation that names no `grace_seconds`.
    public var rotationGrace = Duration.zero
    /// What the previous token presented after its grace window does to its session.
    public var rotationReuse = TokenReusePolicy.revoke
    /// How long lifecycle events are kept for `/v1/events`; zero turns events off.
    public var eventsRetention = Duration.seconds(86_400)
    public var apiKeys: [String] = []
    /// The Redis command (and connect) deadline.
    public var redisTimeout = Duration.milliseconds(2000)
    public var instance = ProcessInfo.processInfo.hostName
    public var logLevel = Logger.Level.info
    /// Serve without API keys on a non-loopback address. Off unless asked for explicitly.
    public var allowUnauthenticated = false
    /// Sentinel mode: `host:port` of each sentinel (empty = talk to `redisURL`'s host directly).
    public var sentinels: [RedisEndpoint] = []
    public var sentinelMaster = "mymaster"
    public var sentinelUsername: String?
    public var sentinelPassword: String?
    /// Cluster mode: `host:port` of seed nodes of a Redis Cluster (empty = not a cluster).
    public var redisCluster: [RedisEndpoint] = []
    /// In Sentinel and Cluster mode, how long a request may wait for a failover.
    public var failoverTimeout = Duration.milliseconds(5000)
    /// `replicated`: a write is acknowledged only once `durabilityReplicas` replicas have it.
    public var durability = Durability.async
    public var durabilityReplicas = 1
    /// How long a replicated write waits for its replicas before `durability_timeout`.
    public var durabilityTimeout = Duration.milliseconds(200)
    /// What every Redis key sessiond touches starts with.
    public var keyPrefix = "sd:"
    /// `rediss://`: the CA file to trust (`nil`: the system's), the client certificate and key
    /// (mutual TLS), the name the servers' certificates must carry, and whether they are verified.
    public var redisTLSCAFile: String?
    public var redisTLSCertificateFile: String?
    public var redisTLSKeyFile: String?
    public var redisTLSServerName: String?
    public var redisTLSVerify = true
    /// `/v1/auth`: the cookie that may carry the token (`nil`: the header only).
    public var cookieName: String?
    /// `/v1/auth`: the attributes passed on as `X-Session-Attribute-<name>` headers.
    public var authAttributes: [String] = []

    /// The grace window's upper bound, for the API's `grace_seconds` too.
    public static let maximumRotationGrace = 60

    /// What a successful write promises.
    public enum Durability: String, Sendable, CaseIterable {
        /// On the primary; Redis replicates it shortly after (asynchronously).
        case async
        /// On the primary and acknowledged by the configured number of replicas (`WAIT`).
        case replicated
    }

    public init() {}

    /// What the command line asked for.
    public enum Invocation: Sendable {
        case run(SessionServiceConfiguration)
        case help(String)
        /// `--finalize-layout`: make the newest storage layout active, then exit (see README).
        case finalizeLayout(SessionServiceConfiguration)
    }

    /// Builds the configuration from `arguments` (without the program name) and `environment`,
    /// then checks it as a whole (see ``validate()``).
    /// - Throws: ``ConfigurationError`` naming the first bad setting.
    public static func parse(arguments: [String], environment: [String: String]) throws(ConfigurationError) -> Invocation {
        var flags: [String: String] = [:]
        var finalizeLayout = false
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--help" || argument == "-h" { return .help(helpText) }
            if argument == "--help-markdown" { return .help(markdownTable) }
            if argument == "--finalize-layout" {
                finalizeLayout = true
                index += 1
                continue
            }
            guard argument.hasPrefix("--") else {
                throw ConfigurationError(setting: argument, reason: "unexpected argument (see --help)")
            }
            var name = String(argument.dropFirst(2))
            var value: String
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            } else if settings.first(where: { $0.name == name })?.isSwitch == true {
                value = "true"
            } else {
                index += 1
                guard index < arguments.count else { throw ConfigurationError(setting: argument, reason: "needs a value") }
                value = arguments[index]
            }
            guard settings.contains(where: { $0.name == name }) else {
                throw ConfigurationError(setting: "--\(name)", reason: "unknown option (see --help)")
            }
            flags[name] = value
            index += 1
        }
        var configuration = SessionServiceConfiguration()
        for setting in settings {
            if let value = flags[setting.name] ?? environment[setting.environmentVariable] {
                try setting.apply(value, to: &configuration)
            }
        }
        try configuration.validate()
        return finalizeLayout ? .finalizeLayout(configuration) : .run(configuration)
    }

    /// Checks the settings together: the absolute timeout must allow some idle time, and without
    /// API keys sessiond serves only on loopback unless unauthenticated mode was asked for.
    public func validate() throws(ConfigurationError) {
        if apiKeys.isEmpty && !Self.isLoopback(host) && !allowUnauthenticated {
            throw ConfigurationError(
                setting: "--host / SESSIOND_HOST",
                reason: "'\(host)' is not a loopback address and no API keys are configured; set SESSIOND_API_KEYS, or SESSIOND_ALLOW_UNAUTHENTICATED=true to serve unauthenticated on purpose"
            )
        }
        let redis: RedisConfiguration
        do {
            redis = try RedisConfiguration(url: redisURL)
        } catch {
            throw ConfigurationError(setting: "--redis-url / SESSIOND_REDIS_URL", reason: (error as? RedisClientError)?.message ?? "\(error)")
        }
        if durability == .replicated && durabilityTimeout >= redisTimeout {
            throw ConfigurationError(
                setting: "--durability-timeout / SESSIOND_DURABILITY_TIMEOUT",
                reason: "\(durabilityTimeout.milliseconds) ms is not shorter than --redis-timeout (\(redisTimeout.milliseconds) ms): the WAIT for replicas would be cut off as a Redis timeout"
            )
        }
        if !redisCluster.isEmpty && !sentinels.isEmpty {
            throw ConfigurationError(
                setting: "--redis-cluster / SESSIOND_REDIS_CLUSTER",
                reason: "is set together with --sentinels / SESSIOND_SENTINELS; sessiond talks to a Redis Cluster or to a Sentinel-watched primary, not both"
            )
        }
        if let tls = redisTLS() {
            do {
                try tls.validate()
            } catch {
                let setting = error.message.hasPrefix("the TLS CA file")
                    ? "--redis-tls-ca-file / SESSIOND_REDIS_TLS_CA_FILE" : "--redis-tls-cert-file / SESSIOND_REDIS_TLS_CERT_FILE"
                throw ConfigurationError(setting: setting, reason: error.message)
            }
        } else {
            let tlsSettings = [
                ("--redis-tls-ca-file / SESSIOND_REDIS_TLS_CA_FILE", redisTLSCAFile != nil),
                ("--redis-tls-cert-file / SESSIOND_REDIS_TLS_CERT_FILE", redisTLSCertificateFile != nil),
                ("--redis-tls-key-file / SESSIOND_REDIS_TLS_KEY_FILE", redisTLSKeyFile != nil),
                ("--redis-tls-server-name / SESSIOND_REDIS_TLS_SERVER_NAME", redisTLSServerName != nil),
                ("--redis-tls-verify / SESSIOND_REDIS_TLS_VERIFY", !redisTLSVerify),
            ]
            if let (setting, _) = tlsSettings.first(where: { $0.1 }) {
                throw ConfigurationError(setting: setting, reason: "is set, but the Redis URL is redis://, not rediss:// (TLS)")
            }
        }
        if !redisCluster.isEmpty && redis.database != 0 {
            throw ConfigurationError(
                setting: "--redis-url / SESSIOND_REDIS_URL",
                reason: "names database \(redis.database), but a Redis Cluster has only database 0"
            )
        }
    }

    /// The TLS of the Redis URL with the `--redis-tls-*` settings, `nil` for `redis://`.
    public func redisTLS() -> RedisTLS? {
        guard (try? RedisConfiguration(url: redisURL))?.tls != nil else { return nil }
        var tls = RedisTLS(caFile: redisTLSCAFile, certificateFile: redisTLSCertificateFile, keyFile: redisTLSKeyFile, serverName: redisTLSServerName)
        tls.verifyCertificates = redisTLSVerify
        return tls
    }

    /// An HTTP token (RFC 9110 `tchar`s), as header and cookie names are.
    static func isToken(_ text: String, maximumBytes: Int) -> Bool {
        (1...maximumBytes).contains(text.utf8.count) && text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// 127.0.0.0/8, ::1 and localhost.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.") && host.split(separator: ".").count == 4
    }
}

/// What a reused token (the previous one, presented after its grace window) does to its session.
public enum TokenReusePolicy: String, Sendable, CaseIterable {
    /// Ends the session at once: whoever kept the old token, the new one stops working too.
    case revoke
    /// Refuses the request only.
    case reject
}
