import Foundation
import RedisClient
import RedisTestSupport
@testable import SessionService
import Testing

/// The kinds of Redis sessiond runs on; the session API suite runs once on each.
enum Topology: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case single
    case sentinel
    case cluster

    var testDescription: String { rawValue }
}

/// The Redis a test's sessiond runs on, started by the test: one server, a primary with a replica
/// watched by a sentinel, or a three-primary Redis Cluster. Its processes live as long as the test
/// holds it.
final class Backend: Sendable {
    let topology: Topology
    let single: RedisServer?
    let sentinel: SentinelTopology?
    let cluster: RedisClusterTopology?

    private init(topology: Topology, single: RedisServer? = nil, sentinel: SentinelTopology? = nil, cluster: RedisClusterTopology? = nil) {
        self.topology = topology
        self.single = single
        self.sentinel = sentinel
        self.cluster = cluster
    }

    static func start(_ topology: Topology) async throws -> Backend {
        switch topology {
        case .single:
            return Backend(topology: topology, single: try await RedisServer.start())
        case .sentinel:
            return Backend(topology: topology, sentinel: try await SentinelTopology.start(replicaCount: 1, sentinelCount: 1))
        case .cluster:
            return Backend(topology: topology, cluster: try await RedisClusterTopology.start(primaries: 3, replicasPerPrimary: 0))
        }
    }

    /// A backend over a server the test started itself.
    static func single(_ server: RedisServer) -> Backend {
        Backend(topology: .single, single: server)
    }

    /// A backend over a cluster the test started itself.
    static func cluster(_ cluster: RedisClusterTopology) -> Backend {
        Backend(topology: .cluster, cluster: cluster)
    }

    /// Points sessiond at this Redis.
    func configure(_ configuration: inout SessionServiceConfiguration) {
        if let single {
            configuration.redisURL = single.url
        } else if let sentinel {
            configuration.findPrimary(through: sentinel.sentinels)
        } else if let cluster {
            configuration.redisCluster = cluster.endpoints
            configuration.redisURL = "redis://127.0.0.1:1"  // credentials only; host and port unused
        }
    }

    /// The ports of the primaries sessiond writes to (one, or each of a cluster's).
    func primaryPorts() async throws -> [Int] {
        if let single { return [single.port] }
        if let sentinel { return [sentinel.primary.port] }
        return try await cluster?.primaries().map(\.port) ?? []
    }

    /// A client for looking at what sessiond stored (keys, TTLs), routed by key on a cluster.
    func inspector() -> RedisClient {
        var configuration: RedisConfiguration
        if let single {
            configuration = RedisConfiguration(host: "127.0.0.1", port: single.port)
        } else if let sentinel {
            configuration = RedisConfiguration(host: "127.0.0.1", port: sentinel.primary.port)
        } else {
            configuration = RedisConfiguration(host: "127.0.0.1", port: 1)
            configuration.cluster = ClusterConfiguration(seeds: cluster?.endpoints ?? [])
        }
        return RedisClient.running(configuration: configuration)
    }
}

extension Backend {
    /// The backends of the suite being run, when it has the ``SharedBackends`` trait.
    @TaskLocal static var shared: [Topology: Backend] = [:]

    /// The suite's shared backend for `topology`, or a new one for this test alone.
    static func forTest(_ topology: Topology) async throws -> Backend {
        if let backend = shared[topology] { return backend }
        return try await start(topology)
    }
}

/// One backend of each topology for a whole suite, started before its first test and stopped
/// after its last: for suites whose tests only create their own sessions (each test uses users
/// of its own), so they can share Redis instead of starting a cluster per test.
struct SharedBackends: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        async let single = Backend.start(.single)
        async let sentinel = Backend.start(.sentinel)
        async let cluster = Backend.start(.cluster)
        let backends: [Topology: Backend] = [.single: try await single, .sentinel: try await sentinel, .cluster: try await cluster]
        try await Backend.$shared.withValue(backends) {
            try await function()
        }
    }
}

extension Trait where Self == SharedBackends {
    /// One backend per topology shared by the suite's tests (see ``SharedBackends``).
    static var sharedBackends: Self { Self() }
}

/// The Redis key of the session with this id (hex), as a fresh Redis stores it: in the newest
/// storage layout.
func sessionKey(_ id: String, prefix: String = "sd:") -> String {
    SessionKeys(prefix: prefix).session(SessionID(parsing: id)!, in: .newest)
}
