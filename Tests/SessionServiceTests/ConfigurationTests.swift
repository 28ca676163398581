import Foundation
import SessionService
import Testing

/// Flags and SESSIOND_* variables, their defaults, and start-up refusals that name the setting.
@Suite struct ConfigurationTests {
    static func configuration(_ arguments: [String] = [], _ environment: [String: String] = [:]) throws -> SessionServiceConfiguration {
        guard case .run(let configuration) = try SessionServiceConfiguration.parse(arguments: arguments, environment: environment) else {
            throw ConfigurationError(setting: "test", reason: "expected a configuration, not help")
        }
        return configuration
    }

    @Test func defaultsAreTheDocumentedOnes() throws {
        let configuration = try Self.configuration()
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8080)
        #expect(configuration.redisURL == "redis://127.0.0.1:6379")
        #expect(configuration.idleTimeout == .seconds(1800))
        #expect(configuration.absoluteTimeout == .seconds(86400))
        #expect(configuration.touchInterval == .seconds(60))
        #expect(configuration.maxBodyBytes == 65536)
        #expect(configuration.maxSessionsPerUser == 0)
        #expect(configuration.apiKeys.isEmpty)
        #expect(configuration.redisTimeout == .milliseconds(2000))
        #expect(!configuration.instance.isEmpty)
        #expect(configuration.logLevel == .info)
        #expect(configuration.keyPrefix == "sd:")
        #expect(configuration.connectionIdleTimeout == .seconds(60))
        #expect(configuration.cookieName == nil && configuration.authAttributes.isEmpty)
    }

    @Test func environmentVariablesSetAndFlagsWin() throws {
        let configuration = try Self.configuration(
            ["--idle-timeout", "60", "--port=9000", "--api-keys", "aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb"],
            ["SESSIOND_IDLE_TIMEOUT": "30", "SESSIOND_ABSOLUTE_TIMEOUT": "120", "SESSIOND_PORT": "1", "SESSIOND_LOG_LEVEL": "DEBUG",
             "SESSIOND_INSTANCE": "node-a", "SESSIOND_REDIS_URL": "redis://:pw@10.0.0.5:6380/2", "SESSIOND_TOUCH_INTERVAL": "0"]
        )
        #expect(configuration.idleTimeout == .seconds(60))
        #expect(configuration.absoluteTimeout == .seconds(120))
        #expect(configuration.port == 9000)
        #expect(configuration.apiKeys == ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"])
        #expect(configuration.logLevel == .debug)
        #expect(configuration.instance == "node-a")
        #expect(configuration.redisURL == "redis://:pw@10.0.0.5:6380/2")
        #expect(configuration.touchInterval == .seconds(0))
    }

    @Test func sentinelAndDurabilitySettings() throws {
        let configuration = try Self.configuration([], [
            "SESSIOND_SENTINELS": "10.0.0.1:26379, [::1]:26380", "SESSIOND_SENTINEL_MASTER": "sessions",
            "SESSIOND_DURABILITY": "replicated", "SESSIOND_DURABILITY_REPLICAS": "2", "SESSIOND_DURABILITY_TIMEOUT": "50",
            "SESSIOND_FAILOVER_TIMEOUT": "8000",
        ])
        #expect(configuration.sentinels.map(\.description) == ["10.0.0.1:26379", "[::1]:26380"])
        #expect(configuration.sentinelMaster == "sessions")
        #expect(configuration.durability == .replicated)
        #expect(configuration.durabilityReplicas == 2)
        #expect(configuration.durabilityTimeout == .milliseconds(50))
        #expect(configuration.failoverTimeout == .milliseconds(8000))
        let defaults = try Self.configuration()
        #expect(defaults.sentinels.isEmpty && defaults.durability == .async && defaults.failoverTimeout == .milliseconds(5000))
    }

    @Test(arguments: [
        ("SESSIOND_PORT", "http", "--port / SESSIOND_PORT"),
        ("SESSIOND_PORT", "70000", "--port / SESSIOND_PORT"),
        ("SESSIOND_IDLE_TIMEOUT", "0", "--idle-timeout / SESSIOND_IDLE_TIMEOUT"),
        ("SESSIOND_ABSOLUTE_TIMEOUT", "-1", "--absolute-timeout / SESSIOND_ABSOLUTE_TIMEOUT"),
        ("SESSIOND_TOUCH_INTERVAL", "soon", "--touch-interval / SESSIOND_TOUCH_INTERVAL"),
        ("SESSIOND_MAX_BODY_BYTES", "10", "--max-body-bytes / SESSIOND_MAX_BODY_BYTES"),
        ("SESSIOND_MAX_SESSIONS_PER_USER", "-2", "--max-sessions-per-user / SESSIOND_MAX_SESSIONS_PER_USER"),
        ("SESSIOND_API_KEYS", "short", "--api-keys / SESSIOND_API_KEYS"),
        ("SESSIOND_API_KEYS", " , ", "--api-keys / SESSIOND_API_KEYS"),
        ("SESSIOND_REDIS_TIMEOUT", "0", "--redis-timeout / SESSIOND_REDIS_TIMEOUT"),
        ("SESSIOND_REDIS_URL", "http://x", "--redis-url / SESSIOND_REDIS_URL"),
        ("SESSIOND_LOG_LEVEL", "loud", "--log-level / SESSIOND_LOG_LEVEL"),
        ("SESSIOND_INSTANCE", "has space", "--instance / SESSIOND_INSTANCE"),
        ("SESSIOND_ALLOW_UNAUTHENTICATED", "perhaps", "--allow-unauthenticated / SESSIOND_ALLOW_UNAUTHENTICATED"),
        ("SESSIOND_SENTINELS", "10.0.0.1", "--sentinels / SESSIOND_SENTINELS"),
        ("SESSIOND_SENTINELS", "10.0.0.1:0", "--sentinels / SESSIOND_SENTINELS"),
        ("SESSIOND_SENTINEL_MASTER", "my master", "--sentinel-master / SESSIOND_SENTINEL_MASTER"),
        ("SESSIOND_FAILOVER_TIMEOUT", "0", "--failover-timeout / SESSIOND_FAILOVER_TIMEOUT"),
        ("SESSIOND_DURABILITY", "eventual", "--durability / SESSIOND_DURABILITY"),
        ("SESSIOND_DURABILITY_REPLICAS", "0", "--durability-replicas / SESSIOND_DURABILITY_REPLICAS"),
        ("SESSIOND_DURABILITY_TIMEOUT", "-5", "--durability-timeout / SESSIOND_DURABILITY_TIMEOUT"),
        ("SESSIOND_REDIS_CLUSTER", "10.0.0.1", "--redis-cluster / SESSIOND_REDIS_CLUSTER"),
        ("SESSIOND_REDIS_CLUSTER", " , ", "--redis-cluster / SESSIOND_REDIS_CLUSTER"),
        ("SESSIOND_KEY_PREFIX", "", "--key-prefix / SESSIOND_KEY_PREFIX"),
        ("SESSIOND_KEY_PREFIX", "app{1}:", "--key-prefix / SESSIOND_KEY_PREFIX"),
        ("SESSIOND_KEY_PREFIX", "my app:", "--key-prefix / SESSIOND_KEY_PREFIX"),
        ("SESSIOND_KEY_PREFIX", String(repeating: "p", count: 65), "--key-prefix / SESSIOND_KEY_PREFIX"),
        ("SESSIOND_CONNECTION_IDLE_TIMEOUT", "0", "--connection-idle-timeout / SESSIOND_CONNECTION_IDLE_TIMEOUT"),
        ("SESSIOND_COOKIE_NAME", "my cookie", "--cookie-name / SESSIOND_COOKIE_NAME"),
        ("SESSIOND_COOKIE_NAME", "sid;x", "--cookie-name / SESSIOND_COOKIE_NAME"),
        ("SESSIOND_AUTH_ATTRIBUTES", "role,bad name", "--auth-attributes / SESSIOND_AUTH_ATTRIBUTES"),
        ("SESSIOND_AUTH_ATTRIBUTES", " , ", "--auth-attributes / SESSIOND_AUTH_ATTRIBUTES"),
    ])
    func badValuesStopStartUpNamingTheSetting(variable: String, value: String, setting: String) {
        #expect {
            try Self.configuration([], [variable: value])
        } throws: { error in
            (error as? ConfigurationError)?.setting == setting
        }
    }

    @Test func clusterSeedsAreParsedAndSettingsThatCannotWorkTogetherAreRefused() throws {
        let cluster = try Self.configuration([], ["SESSIOND_REDIS_CLUSTER": "10.0.0.1:7000,10.0.0.2:7001"])
        #expect(cluster.redisCluster.map(\.description) == ["10.0.0.1:7000", "10.0.0.2:7001"])
        for (environment, setting, says) in [
            (["SESSIOND_REDIS_CLUSTER": "10.0.0.1:7000", "SESSIOND_SENTINELS": "10.0.0.1:26379"],
             "--redis-cluster / SESSIOND_REDIS_CLUSTER", "SESSIOND_SENTINELS"),
            (["SESSIOND_REDIS_CLUSTER": "10.0.0.1:7000", "SESSIOND_REDIS_URL": "redis://127.0.0.1/3"],
             "--redis-url / SESSIOND_REDIS_URL", "database 3"),
            (["SESSIOND_DURABILITY": "replicated", "SESSIOND_DURABILITY_TIMEOUT": "2000"],
             "--durability-timeout / SESSIOND_DURABILITY_TIMEOUT", "--redis-timeout"),
        ] {
            #expect {
                try Self.configuration([], environment)
            } throws: { error in
                guard let error = error as? ConfigurationError else { return false }
                return error.setting == setting && error.reason.contains(says)
            }
        }
    }

    @Test func unknownFlagsAndMissingValuesAreRefused() {
        #expect(throws: ConfigurationError.self) { try Self.configuration(["--no-such-flag", "1"]) }
        #expect(throws: ConfigurationError.self) { try Self.configuration(["--port"]) }
        #expect(throws: ConfigurationError.self) { try Self.configuration(["stray"]) }
    }

    @Test func withoutKeysOnlyLoopbackIsServedUnlessAskedExplicitly() throws {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost"] {
            #expect(try Self.configuration(["--host", host]).host == host)
        }
        for host in ["0.0.0.0", "10.1.2.3", "::", "example.internal"] {
            #expect(throws: ConfigurationError.self, "\(host) without keys") { try Self.configuration(["--host", host]) }
            #expect(try Self.configuration(["--host", host, "--api-keys", "0123456789abcdef0123"]).host == host)
            #expect(try Self.configuration(["--host", host], ["SESSIOND_ALLOW_UNAUTHENTICATED": "true"]).allowUnauthenticated)
            #expect(try Self.configuration(["--host", host, "--allow-unauthenticated"]).allowUnauthenticated)
        }
    }

    @Test func helpNamesEveryFlagAndVariable() throws {
        guard case .help(let text) = try SessionServiceConfiguration.parse(arguments: ["--help"], environment: [:]) else {
            Issue.record("--help must print help")
            return
        }
        for name in ["host", "port", "redis-url", "idle-timeout", "absolute-timeout", "touch-interval", "max-body-bytes",
                     "max-sessions-per-user", "api-keys", "redis-timeout", "instance", "log-level", "allow-unauthenticated",
                     "sentinels", "sentinel-master", "sentinel-password", "failover-timeout", "durability",
                     "durability-replicas", "durability-timeout", "key-prefix", "connection-idle-timeout", "cookie-name",
                     "auth-attributes"] {
            #expect(text.contains("--\(name)"))
            #expect(text.contains("SESSIOND_" + name.uppercased().replacingOccurrences(of: "-", with: "_")))
        }
    }
}

extension ConfigurationTests {
    /// README's configuration table is exactly the one the settings' declarations make: a setting,
    /// its default or its help text cannot change in one place and not the other.
    @Test func readmesTableIsTheOneTheSettingsMake() throws {
        let readme = try String(contentsOf: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("README.md"), encoding: .utf8)
        let table = SessionServiceConfiguration.markdownTable
        #expect(readme.contains(table + "\n"), "README.md's configuration table should read:\n\(table)")
    }

    @Test func everySettingsDefaultIsTheConfigurationsDefault() throws {
        let parsed = try Self.configuration()
        let help = SessionServiceConfiguration.helpText
        for setting in SessionServiceConfiguration.settings where setting.defaultIsValue {
            // Setting a value to its documented default changes nothing.
            let variable = setting.environmentVariable
            let explicit = try Self.configuration([], [variable: setting.defaultDescription])
            #expect("\(explicit)" == "\(parsed)", "\(variable)=\(setting.defaultDescription)")
            #expect(help.contains("(env \(variable), default \(setting.defaultDescription))"))
        }
    }
}
