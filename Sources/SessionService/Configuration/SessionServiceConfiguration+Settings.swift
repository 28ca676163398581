import Logging
import RedisClient

extension SessionServiceConfiguration {
    /// Every setting, in the order `--help` and README list them. Each is declared here once.
    public static let settings: [Setting] = [
        Setting("host", \.host, .text { $0.isEmpty || $0.contains(" ") ? "'\($0)' is not an address" : nil }, help: "address to listen on"),
        Setting("port", \.port, .integer(0...65535), help: "TCP port to listen on (0 = any free port)"),
        Setting(
            "redis-url", \.redisURL, .text { redisURLProblem($0) },
            help: "`redis://[user:password@]host:port[/db]`; `rediss://` for TLS"
        ),
        Setting("idle-timeout", \.idleTimeout, .seconds(1...SessionController.maximumTimeoutSeconds), help: "seconds of inactivity that end a session"),
        Setting("absolute-timeout", \.absoluteTimeout, .seconds(1...SessionController.maximumTimeoutSeconds), help: "seconds after creation that end a session regardless of use"),
        Setting(
            "touch-interval", \.touchInterval, .seconds(0...SessionController.maximumTimeoutSeconds),
            help: "seconds before a read or a write slides the idle deadline again (0 = every one)"
        ),
        Setting("max-body-bytes", \.maxBodyBytes, .integer(256...(64 << 20)), help: "largest request body, in bytes"),
        Setting(
            "connection-idle-timeout", \.connectionIdleTimeout, .seconds(1...86_400),
            help: "seconds an HTTP connection may send nothing before it is closed: between requests, or in the middle of one (a stalled upload); one waiting for its answer never is"
        ),
        Setting(
            "shutdown-delay", \.shutdownDelay, .seconds(0...300),
            help: "seconds SIGTERM drains before sessiond stops accepting: `/readyz` answers 503 `draining` and every answer closes its connection while requests are still served; then the requests in flight finish (30 s at most) and it exits"
        ),
        Setting(
            "max-connections", \.maxConnections, .integer(0...10_000_000),
            help: "open HTTP connections at most; at the limit new connections wait (unaccepted) until one closes, and the open ones are served (0, and the most allowed: the open-file limit, raised to its hard limit at start, less \(DescriptorLimit.reserve) for Redis and files)"
        ),
        Setting(
            "max-sessions-per-user", \.maxSessionsPerUser, .integer(0...1_000_000),
            help: "live sessions per user, one more revokes the oldest (0 = no cap)"
        ),
        Setting(
            "max-session-bytes", \.maxSessionBytes, .integer(1024...(64 << 20)),
            help: "the most data one session may hold: its attributes' names and raw JSON, in bytes (more: 413 `session_too_large`)"
        ),
        Setting(
            "max-attributes", \.maxAttributes, .integer(1...100_000),
            help: "the most attributes one session may hold (more: 413 `session_too_large`)"
        ),
        Setting(
            "max-attribute-name-bytes", \.maxAttributeNameBytes, .integer(1...1024),
            help: "the longest attribute name, in bytes (longer, empty or with control characters: 400 `invalid_attribute_name`)"
        ),
        Setting(
            "rotation-grace", \.rotationGrace, .seconds(0...maximumRotationGrace),
            help: "seconds (0–\(maximumRotationGrace)) the previous token keeps reading and writing after a rotation that names no `grace_seconds`"
        ),
        Setting(
            "rotation-reuse", \.rotationReuse, .choice,
            help: "the previous token after its grace window: `revoke` ends the session (the new token too), `reject` only refuses it; both log a warning and count `sessiond_token_reuse_total`"
        ),
        Setting(
            "events-retention", \.eventsRetention, .seconds(0...31_536_000),
            help: "seconds a session lifecycle event is kept for `/v1/events` (a cursor older than that answers 410 `cursor_expired`); 0 turns events off: no Redis cost, and `/v1/events` answers 404 `events_disabled`. Every instance of a fleet must use the same value"
        ),
        Setting(
            "api-keys", \.apiKeys,
            .list { keys in
                if keys.isEmpty { return "no key given" }
                let bad = keys.first { !isWord($0, bytes: 16...Int.max) }
                return bad.map { "each key must be at least 16 printable ASCII characters without spaces (one is \($0.utf8.count))" }
            },
            help: "comma-separated keys (≥ 16 printable characters each); `/v1` then needs `Authorization: Bearer <key>`; several at once allow rotation"
        ),
        Setting(
            "key-prefix", \.keyPrefix,
            .text { SessionKeys.isValidPrefix($0) ? nil : "'\($0)' is not 1 to \(SessionKeys.maximumPrefixBytes) printable ASCII characters without spaces, '{' or '}'" },
            help: "what every Redis key sessiond uses starts with (1–64 printable characters, no spaces, `{` or `}`); applications sharing a Redis each need their own"
        ),
        Setting(
            "cookie-name", \.cookieName,
            .optional(.text { isToken($0, maximumBytes: 128) ? nil : "'\($0)' is not a cookie name (1 to 128 letters, digits or !#$%&'*+-.^_`|~)" }),
            help: "the cookie `/v1/auth` also takes the token from (without it: the `X-Session-Token` header only)"
        ),
        Setting(
            "auth-attributes", \.authAttributes,
            .list { names in
                guard (1...32).contains(names.count) else { return "give 1 to 32 attribute names" }
                let bad = names.first { !isToken($0, maximumBytes: 64) }
                return bad.map { "'\($0)' cannot be part of a header name (1 to 64 letters, digits or !#$%&'*+-.^_`|~)" }
            },
            help: "comma-separated attributes `/v1/auth` passes on as `X-Session-Attribute-<name>` with their raw JSON"
        ),
        Setting(
            "redis-tls-ca-file", \.redisTLSCAFile, .optional(.path, absent: "the system's"),
            help: "`rediss://`: PEM file of the certificate authorities to trust"
        ),
        Setting(
            "redis-tls-cert-file", \.redisTLSCertificateFile, .optional(.path),
            help: "`rediss://`: sessiond's client certificate (mutual TLS), with the key below"
        ),
        Setting("redis-tls-key-file", \.redisTLSKeyFile, .optional(.path), help: "`rediss://`: the client certificate's private key"),
        Setting(
            "redis-tls-server-name", \.redisTLSServerName,
            .optional(.text { isWord($0, bytes: 1...253) ? nil : "'\($0)' is not a host name" },
                      absent: "the host connected to"),
            help: "`rediss://`: the name every server's certificate must carry (and the SNI), for every server, sentinel and node"
        ),
        Setting(
            "redis-tls-verify", \.redisTLSVerify, .boolean,
            help: "`false` accepts any certificate from any server (logged as a warning at start-up; test benches only)"
        ),
        Setting(
            "redis-timeout", \.redisTimeout, .milliseconds(1...600_000),
            help: "Redis command deadline, milliseconds; past it the request gets 503"
        ),
        Setting(
            "instance", \.instance,
            .text { isWord($0, bytes: 1...128) ? nil : "must be 1 to 128 printable ASCII characters without spaces" },
            help: "this instance's name in logs and responses", defaultDescription: "the host name"
        ),
        Setting("log-level", \.logLevel, .choice, help: "trace, debug, info, notice, warning, error or critical"),
        Setting(
            "allow-unauthenticated", \.allowUnauthenticated, .boolean,
            help: "serve without API keys on a non-loopback address (the flag alone means true)"
        ),
        Setting(
            "sentinels", \.sentinels, .endpoints(SentinelConfiguration.endpoints(parsing:)),
            help: "comma-separated `host:port` of Redis Sentinels (Sentinel mode): the primary is found through them; the URL's host and port are then not used, its credentials and database are"
        ),
        Setting(
            "sentinel-master", \.sentinelMaster,
            .text { isWord($0, bytes: 1...Int.max) ? nil : "must be a name without spaces" },
            help: "the master name the sentinels monitor"
        ),
        Setting(
            "sentinel-username", \.sentinelUsername, .textOrNone,
            help: "the sentinels' ACL user, when they use ACLs (`user` lines in sentinel.conf)"
        ),
        Setting(
            "sentinel-password", \.sentinelPassword, .textOrNone,
            help: "the sentinels' own password (`requirepass` in sentinel.conf, or their ACL user's)"
        ),
        Setting(
            "redis-cluster", \.redisCluster, .endpoints(ClusterConfiguration.seeds(parsing:)),
            help: "comma-separated `host:port` seed nodes of a Redis Cluster (Cluster mode; any one answering is enough; not with `--sentinels`): commands go to the primary of each key's slot; the URL's credentials apply, its database must be 0"
        ),
        Setting(
            "failover-timeout", \.failoverTimeout, .milliseconds(100...600_000),
            help: "milliseconds a request may wait for a failover (Sentinel or Cluster) or a slot migration before 503, retrying what is safe to retry; with one Redis, how long a write is retried over new connections after Redis closed its connection (`CLIENT KILL`, `timeout`)"
        ),
        Setting("durability", \.durability, .choice, help: "`async` (acknowledged once on the primary) or `replicated` (once `WAIT` confirms the replicas have it)"),
        Setting(
            "durability-replicas", \.durabilityReplicas, .integer(1...100),
            help: "replicas that must have a write before it is acknowledged (replicated mode)"
        ),
        Setting(
            "durability-timeout", \.durabilityTimeout, .milliseconds(1...60_000),
            help: "milliseconds a replicated write waits for them before 503 `durability_timeout`; with Sentinel or Cluster a write whose wait timed out is sent again (a failover may be under way; its write id makes the repeat harmless) until `--failover-timeout`; must be shorter than `--redis-timeout`"
        ),
    ]

    /// The `--help` text, made from ``settings``.
    public static var helpText: String {
        var lines = [
            "sessiond: a Redis-backed session service over HTTP/JSON",
            "",
            "usage: sessiond [--option value | --option=value ...]",
            "       sessiond --finalize-layout [--option value ...]",
            "",
            "Every option can also be set by its environment variable; a flag wins.",
            "--finalize-layout, with the server's own configuration, makes the newest storage layout",
            "active once no sessiond older than layout versions runs (see README), and exits.",
            "",
        ]
        for setting in settings {
            lines.append("  \(setting.flag) <value>  (env \(setting.environmentVariable), default \(setting.defaultDescription))")
            lines.append("      \(setting.help)")
        }
        return lines.joined(separator: "\n")
    }

    /// README's configuration table, made from ``settings`` (a test holds README to it).
    public static var markdownTable: String {
        var lines = ["| flag | variable | default | meaning |", "|---|---|---|---|"]
        for setting in settings {
            let defaultText = setting.defaultIsValue ? "`\(setting.defaultDescription)`" : setting.defaultDescription
            lines.append("| `\(setting.flag)` | `\(setting.environmentVariable)` | \(defaultText) | \(setting.help) |")
        }
        return lines.joined(separator: "\n")
    }

    /// Printable ASCII without spaces, of a length within `bytes`.
    private static func isWord(_ text: String, bytes: ClosedRange<Int>) -> Bool {
        bytes.contains(text.utf8.count) && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }

    /// Why `url` is not a Redis URL sessiond can use; `nil` when it is.
    private static func redisURLProblem(_ url: String) -> String? {
        do {
            _ = try RedisConfiguration(url: url)
            return nil
        } catch {
            return (error as? RedisClientError)?.message ?? "\(error)"
        }
    }
}

extension SettingValue where Value == String {
    /// A file path: not empty.
    static var path: Self { .text { $0.isEmpty ? "no file given" : nil } }
}

extension SettingValue where Value == String? {
    /// Any text; empty means none.
    static var textOrNone: Self {
        Self(parse: { $0.isEmpty ? nil : $0 }, describe: { $0 })
    }
}

extension SettingValue where Value == [RedisEndpoint] {
    /// Comma-separated `host:port`s, parsed by `parse` (the Redis client's own parser).
    static func endpoints(_ parse: @escaping @Sendable (String) throws -> [RedisEndpoint]) -> Self {
        .text(
            { text throws(SettingValueError) in
                do {
                    return try parse(text)
                } catch {
                    throw SettingValueError(reason: (error as? RedisClientError)?.message ?? "\(error)")
                }
            },
            describe: { $0.isEmpty ? nil : $0.map(\.description).joined(separator: ",") }
        )
    }
}
