import Foundation
import Logging
import RedisClient

/// Everything sessiond can be configured with. Each setting is a flag and an environment variable
/// (`--idle-timeout` ↔ `SESSIOND_IDLE_TIMEOUT`); a flag wins over the variable, which wins over the
/// default. ``settings`` is the one list both the parser and `--help` are made from.
public struct SessionServiceConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 asks the OS for a free port (tests).
    public var port = 8080
    public var redisURL = "redis://127.0.0.1:6379"
    public var idleTimeout = 1800
    public var absoluteTimeout = 86400
    public var touchInterval = 60
    public var maxBodyBytes = 65536
    /// Seconds an HTTP connection may stay open with no request in progress before it is closed.
    public var connectionIdleTimeout = 60
    public var maxSessionsPerUser = 0
    /// Seconds the previous token keeps working after a rotation that names no `grace_seconds`.
    public var rotationGrace = 0
    /// What the previous token presented after its grace window does to its session.
    public var rotationReuse = TokenReusePolicy.revoke
    public var apiKeys: [String] = []
    /// The Redis command deadline, in milliseconds.
    public var redisTimeout = 2000
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
    /// In Sentinel and Cluster mode, how long a request may wait for a failover (milliseconds).
    public var failoverTimeout = 5000
    /// `replicated`: a write is acknowledged only once `durabilityReplicas` replicas have it.
    public var durability = Durability.async
    public var durabilityReplicas = 1
    /// How long a replicated write waits for its replicas (milliseconds) before `durability_timeout`.
    public var durabilityTimeout = 200
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
    public enum Durability: String, Sendable {
        /// On the primary; Redis replicates it shortly after (asynchronously).
        case async
        /// On the primary and acknowledged by the configured number of replicas (`WAIT`).
        case replicated
    }

    public init() {}

    /// One configurable setting: its flag, variable, default and meaning, and how to apply a value.
    public struct Setting: Sendable {
        public let name: String
        public let help: String
        public let defaultDescription: String
        let apply: @Sendable (inout SessionServiceConfiguration, String) throws(ConfigurationError) -> Void

        public var flag: String { "--\(name)" }
        public var environmentVariable: String { "SESSIOND_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }
        var label: String { "\(flag) / \(environmentVariable)" }
    }

    /// Every setting, in the order `--help` lists them.
    public static let settings: [Setting] = [
        Setting(name: "host", help: "address to listen on", defaultDescription: "127.0.0.1") { configuration, value throws(ConfigurationError) in
            guard !value.isEmpty, !value.contains(" ") else { throw ConfigurationError(setting: "--host / SESSIOND_HOST", reason: "'\(value)' is not an address") }
            configuration.host = value
        },
        Setting(name: "port", help: "TCP port to listen on (0 = any free port)", defaultDescription: "8080") { configuration, value throws(ConfigurationError) in
            configuration.port = try integer(value, "--port / SESSIOND_PORT", in: 0...65535)
        },
        Setting(name: "redis-url", help: "redis://[user:password@]host:port[/db], or rediss:// for TLS", defaultDescription: "redis://127.0.0.1:6379") { configuration, value throws(ConfigurationError) in
            do {
                _ = try RedisConfiguration(url: value)
            } catch {
                throw ConfigurationError(setting: "--redis-url / SESSIOND_REDIS_URL", reason: (error as? RedisClientError)?.message ?? "\(error)")
            }
            configuration.redisURL = value
        },
        Setting(name: "idle-timeout", help: "seconds of inactivity that end a session", defaultDescription: "1800") { configuration, value throws(ConfigurationError) in
            configuration.idleTimeout = try integer(value, "--idle-timeout / SESSIOND_IDLE_TIMEOUT", in: 1...315_360_000)
        },
        Setting(name: "absolute-timeout", help: "seconds after creation that end a session regardless of use", defaultDescription: "86400") { configuration, value throws(ConfigurationError) in
            configuration.absoluteTimeout = try integer(value, "--absolute-timeout / SESSIOND_ABSOLUTE_TIMEOUT", in: 1...315_360_000)
        },
        Setting(name: "touch-interval", help: "seconds before a read or a write slides the idle deadline again (0 = every one)", defaultDescription: "60") { configuration, value throws(ConfigurationError) in
            configuration.touchInterval = try integer(value, "--touch-interval / SESSIOND_TOUCH_INTERVAL", in: 0...315_360_000)
        },
        Setting(name: "max-body-bytes", help: "largest request body accepted", defaultDescription: "65536") { configuration, value throws(ConfigurationError) in
            configuration.maxBodyBytes = try integer(value, "--max-body-bytes / SESSIOND_MAX_BODY_BYTES", in: 256...(64 << 20))
        },
        Setting(name: "connection-idle-timeout", help: "seconds a keep-alive HTTP connection may wait for its next request before it is closed (one with a request in progress never is)", defaultDescription: "60") { configuration, value throws(ConfigurationError) in
            configuration.connectionIdleTimeout = try integer(value, "--connection-idle-timeout / SESSIOND_CONNECTION_IDLE_TIMEOUT", in: 1...86_400)
        },
        Setting(name: "max-sessions-per-user", help: "live sessions per user; one more revokes the oldest (0 = no cap)", defaultDescription: "0") { configuration, value throws(ConfigurationError) in
            configuration.maxSessionsPerUser = try integer(value, "--max-sessions-per-user / SESSIOND_MAX_SESSIONS_PER_USER", in: 0...1_000_000)
        },
        Setting(name: "rotation-grace", help: "seconds the previous token keeps reading and writing after POST /v1/session/rotate when the request names no grace_seconds (0 to 60)", defaultDescription: "0") { configuration, value throws(ConfigurationError) in
            configuration.rotationGrace = try integer(value, "--rotation-grace / SESSIOND_ROTATION_GRACE", in: 0...maximumRotationGrace)
        },
        Setting(name: "rotation-reuse", help: "what the previous token presented after its grace window does: revoke (ends the session, the new token too) or reject (refused only); both log a warning and count sessiond_token_reuse_total", defaultDescription: "revoke") { configuration, value throws(ConfigurationError) in
            guard let policy = TokenReusePolicy(rawValue: value.lowercased()) else {
                throw ConfigurationError(setting: "--rotation-reuse / SESSIOND_ROTATION_REUSE", reason: "'\(value)' is not revoke or reject")
            }
            configuration.rotationReuse = policy
        },
        Setting(name: "api-keys", help: "comma-separated API keys, each at least 16 characters; /v1 then needs 'Authorization: Bearer <key>'", defaultDescription: "none") { configuration, value throws(ConfigurationError) in
            let keys = value.split(separator: ",").map { String($0.trimmingWhitespace()) }.filter { !$0.isEmpty }
            guard !keys.isEmpty else { throw ConfigurationError(setting: "--api-keys / SESSIOND_API_KEYS", reason: "no key given") }
            for key in keys where key.utf8.count < 16 || !key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) {
                throw ConfigurationError(setting: "--api-keys / SESSIOND_API_KEYS", reason: "each key must be at least 16 printable ASCII characters without spaces (one is \(key.utf8.count))")
            }
            configuration.apiKeys = keys
        },
        Setting(name: "key-prefix", help: "what every Redis key sessiond uses starts with (1 to 64 printable characters, no spaces, '{' or '}'); applications sharing a Redis each need their own", defaultDescription: "sd:") { configuration, value throws(ConfigurationError) in
            guard SessionKeys.isValidPrefix(value) else {
                throw ConfigurationError(setting: "--key-prefix / SESSIOND_KEY_PREFIX", reason: "'\(value)' is not 1 to \(SessionKeys.maximumPrefixBytes) printable ASCII characters without spaces, '{' or '}'")
            }
            configuration.keyPrefix = value
        },
        Setting(name: "cookie-name", help: "the cookie GET /v1/auth also takes the token from (an RFC 6265 token)", defaultDescription: "none: the X-Session-Token header only") { configuration, value throws(ConfigurationError) in
            guard isToken(value, maximumBytes: 128) else {
                throw ConfigurationError(setting: "--cookie-name / SESSIOND_COOKIE_NAME", reason: "'\(value)' is not a cookie name (1 to 128 letters, digits or !#$%&'*+-.^_`|~)")
            }
            configuration.cookieName = value
        },
        Setting(name: "auth-attributes", help: "comma-separated attributes GET /v1/auth passes on, each as X-Session-Attribute-<name> with its raw JSON", defaultDescription: "none") { configuration, value throws(ConfigurationError) in
            let names = value.split(separator: ",").map { String($0.trimmingWhitespace()) }.filter { !$0.isEmpty }
            guard !names.isEmpty, names.count <= 32 else {
                throw ConfigurationError(setting: "--auth-attributes / SESSIOND_AUTH_ATTRIBUTES", reason: "give 1 to 32 attribute names")
            }
            for name in names where !isToken(name, maximumBytes: 64) {
                throw ConfigurationError(setting: "--auth-attributes / SESSIOND_AUTH_ATTRIBUTES", reason: "'\(name)' cannot be part of a header name (1 to 64 letters, digits or !#$%&'*+-.^_`|~)")
            }
            configuration.authAttributes = names
        },
        Setting(name: "redis-tls-ca-file", help: "rediss://: PEM file of the certificate authorities to trust", defaultDescription: "the system's") { configuration, value throws(ConfigurationError) in
            configuration.redisTLSCAFile = try path(value, "--redis-tls-ca-file / SESSIOND_REDIS_TLS_CA_FILE")
        },
        Setting(name: "redis-tls-cert-file", help: "rediss://: PEM file of sessiond's client certificate (mutual TLS; with --redis-tls-key-file)", defaultDescription: "none") { configuration, value throws(ConfigurationError) in
            configuration.redisTLSCertificateFile = try path(value, "--redis-tls-cert-file / SESSIOND_REDIS_TLS_CERT_FILE")
        },
        Setting(name: "redis-tls-key-file", help: "rediss://: PEM file of the client certificate's private key", defaultDescription: "none") { configuration, value throws(ConfigurationError) in
            configuration.redisTLSKeyFile = try path(value, "--redis-tls-key-file / SESSIOND_REDIS_TLS_KEY_FILE")
        },
        Setting(name: "redis-tls-server-name", help: "rediss://: the name Redis' certificates must carry (and the SNI sent), for every server, sentinel and node", defaultDescription: "the host connected to") { configuration, value throws(ConfigurationError) in
            guard !value.isEmpty, value.utf8.count <= 253, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw ConfigurationError(setting: "--redis-tls-server-name / SESSIOND_REDIS_TLS_SERVER_NAME", reason: "'\(value)' is not a host name")
            }
            configuration.redisTLSServerName = value
        },
        Setting(name: "redis-tls-verify", help: "rediss://: false accepts any certificate from any server (logged as a warning at start-up; never in production)", defaultDescription: "true") { configuration, value throws(ConfigurationError) in
            switch value.lowercased() {
            case "true", "1", "yes": configuration.redisTLSVerify = true
            case "false", "0", "no": configuration.redisTLSVerify = false
            default: throw ConfigurationError(setting: "--redis-tls-verify / SESSIOND_REDIS_TLS_VERIFY", reason: "'\(value)' is not true or false")
            }
        },
        Setting(name: "redis-timeout", help: "Redis command deadline in milliseconds", defaultDescription: "2000") { configuration, value throws(ConfigurationError) in
            configuration.redisTimeout = try integer(value, "--redis-timeout / SESSIOND_REDIS_TIMEOUT", in: 1...600_000)
        },
        Setting(name: "instance", help: "this instance's name in logs and responses", defaultDescription: "the host name") { configuration, value throws(ConfigurationError) in
            guard !value.isEmpty, value.utf8.count <= 128, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw ConfigurationError(setting: "--instance / SESSIOND_INSTANCE", reason: "must be 1 to 128 printable ASCII characters without spaces")
            }
            configuration.instance = value
        },
        Setting(name: "log-level", help: "trace, debug, info, notice, warning, error or critical", defaultDescription: "info") { configuration, value throws(ConfigurationError) in
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                throw ConfigurationError(setting: "--log-level / SESSIOND_LOG_LEVEL", reason: "'\(value)' is not one of trace, debug, info, notice, warning, error, critical")
            }
            configuration.logLevel = level
        },
        Setting(name: "sentinels", help: "comma-separated host:port of Redis Sentinels; the primary is then found through them (the URL's host and port are not used, its credentials and database are)", defaultDescription: "none") { configuration, value throws(ConfigurationError) in
            do {
                configuration.sentinels = try SentinelConfiguration.endpoints(parsing: value)
            } catch {
                throw ConfigurationError(setting: "--sentinels / SESSIOND_SENTINELS", reason: (error as? RedisClientError)?.message ?? "\(error)")
            }
        },
        Setting(name: "redis-cluster", help: "comma-separated host:port of Redis Cluster seed nodes (any one answering is enough); commands then go to the primary of each key's slot (the URL's host and port are not used, its credentials are; its database must be 0)", defaultDescription: "none") { configuration, value throws(ConfigurationError) in
            do {
                configuration.redisCluster = try ClusterConfiguration.seeds(parsing: value)
            } catch {
                throw ConfigurationError(setting: "--redis-cluster / SESSIOND_REDIS_CLUSTER", reason: (error as? RedisClientError)?.message ?? "\(error)")
            }
        },
        Setting(name: "sentinel-master", help: "the master name the sentinels monitor", defaultDescription: "mymaster") { configuration, value throws(ConfigurationError) in
            guard !value.isEmpty, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw ConfigurationError(setting: "--sentinel-master / SESSIOND_SENTINEL_MASTER", reason: "must be a name without spaces")
            }
            configuration.sentinelMaster = value
        },
        Setting(name: "sentinel-username", help: "ACL user of the sentinels, when they use ACLs (sentinel.conf 'user' lines)", defaultDescription: "none") { configuration, value throws(ConfigurationError) in
            configuration.sentinelUsername = value.isEmpty ? nil : value
        },
        Setting(name: "sentinel-password", help: "password of the sentinels (requirepass in sentinel.conf, or the ACL user's)", defaultDescription: "none") { configuration, value throws(ConfigurationError) in
            configuration.sentinelPassword = value.isEmpty ? nil : value
        },
        Setting(name: "failover-timeout", help: "milliseconds a request may wait for a Sentinel or Cluster failover (or a slot migration) before 503; with one Redis, how long a write is retried over new connections after Redis closed its connection", defaultDescription: "5000") { configuration, value throws(ConfigurationError) in
            configuration.failoverTimeout = try integer(value, "--failover-timeout / SESSIOND_FAILOVER_TIMEOUT", in: 100...600_000)
        },
        Setting(name: "durability", help: "async (acknowledged once on the primary) or replicated (once WAIT confirms the replicas have it)", defaultDescription: "async") { configuration, value throws(ConfigurationError) in
            guard let durability = Durability(rawValue: value.lowercased()) else {
                throw ConfigurationError(setting: "--durability / SESSIOND_DURABILITY", reason: "'\(value)' is not async or replicated")
            }
            configuration.durability = durability
        },
        Setting(name: "durability-replicas", help: "replicas that must acknowledge a write in replicated mode", defaultDescription: "1") { configuration, value throws(ConfigurationError) in
            configuration.durabilityReplicas = try integer(value, "--durability-replicas / SESSIOND_DURABILITY_REPLICAS", in: 1...100)
        },
        Setting(name: "durability-timeout", help: "milliseconds a replicated write waits for its replicas before 503 durability_timeout", defaultDescription: "200") { configuration, value throws(ConfigurationError) in
            configuration.durabilityTimeout = try integer(value, "--durability-timeout / SESSIOND_DURABILITY_TIMEOUT", in: 1...60_000)
        },
        Setting(name: "allow-unauthenticated", help: "true to serve without API keys on a non-loopback address", defaultDescription: "false") { configuration, value throws(ConfigurationError) in
            switch value.lowercased() {
            case "true", "1", "yes": configuration.allowUnauthenticated = true
            case "false", "0", "no": configuration.allowUnauthenticated = false
            default: throw ConfigurationError(setting: "--allow-unauthenticated / SESSIOND_ALLOW_UNAUTHENTICATED", reason: "'\(value)' is not true or false")
            }
        },
    ]

    /// What the command line asked for.
    public enum Invocation: Sendable {
        case run(SessionServiceConfiguration)
        case help(String)
    }

    /// Builds the configuration from `arguments` (without the program name) and `environment`,
    /// then checks it as a whole (see ``validate()``).
    /// - Throws: ``ConfigurationError`` naming the first bad setting.
    public static func parse(arguments: [String], environment: [String: String]) throws(ConfigurationError) -> Invocation {
        var flags: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--help" || argument == "-h" { return .help(helpText) }
            guard argument.hasPrefix("--") else {
                throw ConfigurationError(setting: argument, reason: "unexpected argument (see --help)")
            }
            var name = String(argument.dropFirst(2))
            var value: String
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            } else if name == "allow-unauthenticated" {
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
                try setting.apply(&configuration, value)
            }
        }
        try configuration.validate()
        return .run(configuration)
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
                reason: "\(durabilityTimeout) ms is not shorter than --redis-timeout (\(redisTimeout) ms): the WAIT for replicas would be cut off as a Redis timeout"
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

    /// A file path setting: not empty.
    static func path(_ value: String, _ setting: String) throws(ConfigurationError) -> String {
        guard !value.isEmpty else { throw ConfigurationError(setting: setting, reason: "no file given") }
        return value
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

    /// The `--help` text, made from ``settings``.
    public static var helpText: String {
        var lines = [
            "sessiond: a Redis-backed session service over HTTP/JSON",
            "",
            "usage: sessiond [--option value | --option=value ...]",
            "",
            "Every option can also be set by its environment variable; a flag wins.",
            "",
        ]
        for setting in settings {
            lines.append("  \(setting.flag) <value>  (env \(setting.environmentVariable), default \(setting.defaultDescription))")
            lines.append("      \(setting.help)")
        }
        return lines.joined(separator: "\n")
    }

    private static func integer(_ value: String, _ setting: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let number = Int(value.trimmingWhitespace()), range.contains(number) else {
            throw ConfigurationError(setting: setting, reason: "'\(value)' is not a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }
}

/// What a reused token (the previous one, presented after its grace window) does to its session.
public enum TokenReusePolicy: String, Sendable {
    /// Ends the session at once: whoever kept the old token, the new one stops working too.
    case revoke
    /// Refuses the request only.
    case reject
}
