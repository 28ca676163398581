import Foundation
import RedisClient
import RedisTestSupport
import SessionService
import Testing

/// sessiond over `rediss://` to real `redis-server` and `redis-sentinel` processes listening with
/// `tls-port` (Debian's build has TLS), with certificates the test makes with `openssl`.
@Suite struct RedisTLSTests {
    /// A Redis with TLS on its own port, and that port.
    static func tlsRedis(_ certificates: TestCertificates, requireClientCertificates: Bool = false) async throws -> (RedisServer, Int) {
        let tlsPort = try freeLoopbackPort()
        let redis = try await RedisServer.start(
            arguments: certificates.redisArguments(tlsPort: tlsPort, requireClientCertificates: requireClientCertificates)
        )
        return (redis, tlsPort)
    }

    /// Creates, reads and patches a session: the store works end to end.
    static func expectSessionsWork(_ service: TestService) async throws {
        #expect(try await service.request("GET", "/readyz").status == 200)
        let (token, _) = try await service.create(#"{"data":{"over":"tls"}}"#)
        #expect(try await service.patch(token, #"{"n":1}"#).status == 200)
        #expect((try await service.get(token).jsonObject?["data"] as? [String: Any])?["over"] as? String == "tls")
    }

    @Test func sessiondServesOverTLSVerifyingTheServersCertificateAndName() async throws {
        let certificates = try await TestCertificates.make()
        let (redis, tlsPort) = try await Self.tlsRedis(certificates)
        let service = try await TestService.start(redis: redis) {
            $0.redisURL = "rediss://127.0.0.1:\(tlsPort)"
            $0.redisTLSCAFile = certificates.caFile
            $0.redisTLSServerName = "redis.test"
        }
        try await Self.expectSessionsWork(service)
        // The TLS port speaks only TLS: a plain client there gets nothing it can read.
        var plainConfiguration = RedisConfiguration(host: "127.0.0.1", port: tlsPort)
        plainConfiguration.connectTimeout = .milliseconds(500)
        plainConfiguration.commandTimeout = .milliseconds(500)
        let plain = RedisClient.running(configuration: plainConfiguration)
        await #expect(throws: RedisClientError.self) { _ = try await plain.send("PING") }
        await plain.shutdown()
        await service.stop()
    }

    @Test func mutualTLSPresentsTheClientCertificateAndWithoutOneRedisIsNotReady() async throws {
        let certificates = try await TestCertificates.make()
        let (redis, tlsPort) = try await Self.tlsRedis(certificates, requireClientCertificates: true)
        let withCertificate = try await TestService.start(redis: redis) {
            $0.redisURL = "rediss://127.0.0.1:\(tlsPort)"
            $0.redisTLSCAFile = certificates.caFile
            $0.redisTLSCertificateFile = certificates.clientCertificateFile
            $0.redisTLSKeyFile = certificates.clientKeyFile
            $0.redisTLSServerName = "redis.test"
        }
        try await Self.expectSessionsWork(withCertificate)
        let without = try await TestService.start(redis: redis) {
            $0.redisURL = "rediss://127.0.0.1:\(tlsPort)"
            $0.redisTLSCAFile = certificates.caFile
            $0.redisTLSServerName = "redis.test"
            $0.redisTimeout = .milliseconds(1000)
        }
        let started = ContinuousClock.now
        let refused = try await without.request("GET", "/readyz")
        #expect(refused.status == 503 && refused.errorCode == "storage_unavailable")
        #expect(ContinuousClock.now - started < .seconds(5), "refused fast, not after a hang")
        await withCertificate.stop()
        await without.stop()
    }

    /// A wrong CA, a wrong host name (asked for, or the address connected to when none is asked
    /// for: the certificate names only redis.test) and a plaintext server behind rediss:// each end
    /// in a fast 503 from /readyz that says what failed, and so does every request.
    @Test(arguments: ["wrong CA", "wrong host name", "address not in the certificate", "plaintext server"])
    func aServerThatCannotBeTrustedIsRefusedFastWithTheReason(_ failure: String) async throws {
        let certificates = try await TestCertificates.make()
        let (redis, tlsPort) = try await Self.tlsRedis(certificates)
        let service = try await TestService.start(redis: redis) {
            // Room for a handshake on a busy machine (1 s timed out in a run beside two builds):
            // a refusal ends the handshake at once, and a hang would end in a timeout that does
            // not name TLS.
            $0.redisTimeout = .seconds(5)
            $0.redisURL = "rediss://127.0.0.1:\(tlsPort)"
            $0.redisTLSCAFile = certificates.caFile
            $0.redisTLSServerName = "redis.test"
            switch failure {
            case "wrong CA": $0.redisTLSCAFile = certificates.otherCAFile
            case "wrong host name": $0.redisTLSServerName = "somewhere-else.test"
            case "address not in the certificate": $0.redisTLSServerName = nil
            default: $0.redisURL = "rediss://127.0.0.1:\(redis.port)"
            }
        }
        let started = ContinuousClock.now
        let ready = try await service.request("GET", "/readyz")
        #expect(ready.status == 503 && ready.errorCode == "storage_unavailable", "\(failure): \(ready.text)")
        let message = ((ready.jsonObject?["error"] as? [String: Any])?["message"] as? String ?? "").lowercased()
        #expect(message.contains("tls") || message.contains("ssl") || message.contains("handshake") || message.contains("certificate"),
                "\(failure): the reason names TLS: \(message)")
        #expect(try await service.request("POST", "/v1/sessions", json: "{}").status == 503)
        #expect(ContinuousClock.now - started < .seconds(15), "\(failure): refused fast, not after a hang")
        await service.stop()
    }

    @Test func sentinelOverTLSFindsThePrimaryAndSessiondFollowsIt() async throws {
        let certificates = try await TestCertificates.make()
        let (primary, tlsPort) = try await Self.tlsRedis(certificates)
        let sentinelTLSPort = try freeLoopbackPort()
        let sentinel = try await RedisServer.startSentinel(
            monitoring: primary, primaryPort: tlsPort, quorum: 1,
            extraConfig: [
                "tls-port \(sentinelTLSPort)", "tls-cert-file \(certificates.serverCertificateFile)",
                "tls-key-file \(certificates.serverKeyFile)", "tls-ca-cert-file \(certificates.caFile)",
                "tls-auth-clients no", "tls-replication yes",
            ]
        )
        let service = try await TestService.start(redis: primary) {
            $0.sentinels = [RedisEndpoint(host: "127.0.0.1", port: sentinelTLSPort)]
            $0.redisURL = "rediss://127.0.0.1:1"  // host and port unused in Sentinel mode
            $0.redisTLSCAFile = certificates.caFile
            $0.redisTLSServerName = "redis.test"
        }
        try await Self.expectSessionsWork(service)
        let ready = try #require(try await service.request("GET", "/readyz").jsonObject?["primary"] as? [String: Any])
        #expect(ready["address"] as? String == "127.0.0.1:\(tlsPort)", "the primary found through the sentinel, at its TLS port")
        await service.stop()
        _ = sentinel
    }

    @Test func aClusterOverTLSIsMappedAndServedOverTLS() async throws {
        let certificates = try await TestCertificates.make()
        var nodes: [(server: RedisServer, tlsPort: Int)] = []
        for _ in 0..<3 {
            let tlsPort = try freeLoopbackPort(clusterNode: true)
            let server = try await RedisServer.start(
                arguments: RedisClusterTopology.nodeArguments
                    + certificates.redisArguments(tlsPort: tlsPort, requireClientCertificates: false)
                    + ["--tls-cluster", "yes", "--tls-replication", "yes"],
                port: try freeLoopbackPort(clusterNode: true)
            )
            nodes.append((server, tlsPort))
        }
        // With tls-cluster the nodes announce, and meet on the bus of, their TLS ports.
        try await runToCompletion(
            ["redis-cli", "--tls", "--cacert", certificates.caFile, "--cert", certificates.clientCertificateFile,
             "--key", certificates.clientKeyFile, "--cluster", "create"]
                + nodes.map { "127.0.0.1:\($0.tlsPort)" } + ["--cluster-replicas", "0", "--cluster-yes"],
            timeout: .seconds(30)
        )
        let probe = RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: nodes[0].server.port))
        #expect(await eventually(timeout: .seconds(20)) {
            (try await probe.send("CLUSTER", "INFO").string ?? "").contains("cluster_state:ok")
        })
        await probe.shutdown()
        let service = try await TestService.start(redis: nodes[0].server) {
            $0.redisCluster = nodes.map { RedisEndpoint(host: "127.0.0.1", port: $0.tlsPort) }
            $0.redisURL = "rediss://127.0.0.1:1"  // host and port unused in Cluster mode
            $0.redisTLSCAFile = certificates.caFile
            $0.redisTLSServerName = "redis.test"
        }
        #expect(await eventually(timeout: .seconds(10)) { try await service.request("GET", "/readyz").status == 200 })
        let ready = try #require(try await service.request("GET", "/readyz").jsonObject?["cluster"] as? [String: Any])
        let addresses = Set((ready["nodes"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String })
        #expect(addresses == Set(nodes.map { "127.0.0.1:\($0.tlsPort)" }), "the map names the nodes' TLS ports")
        for _ in 0..<20 { try await Self.expectSessionsWork(service) }  // sessions on every shard
        await service.stop()
    }

    @Test func tlsSettingsThatCannotWorkStopStartUpNamingTheSetting() throws {
        var configuration = SessionServiceConfiguration()
        configuration.redisTLSCAFile = "/nonexistent/ca.pem"
        #expect(throws: ConfigurationError.self) { try configuration.validate() }  // with redis://
        configuration.redisURL = "rediss://127.0.0.1:6380"
        #expect { try configuration.validate() } throws: { ($0 as? ConfigurationError)?.setting.contains("--redis-tls-ca-file") == true }
        configuration.redisTLSCAFile = nil
        configuration.redisTLSCertificateFile = "/nonexistent/client.pem"
        #expect { try configuration.validate() } throws: { ($0 as? ConfigurationError)?.setting.contains("--redis-tls-cert-file") == true }
    }
}
