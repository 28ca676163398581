import Foundation
import Hummingbird
import RedisClient

/// Liveness, readiness, metrics and the contract.
struct HealthController {
    typealias Context = SessionRequestContext
    let store: SessionStore
    let instance: String
    /// The fleet's storage layout as this instance last heard it; not ready before it has.
    let layout: ActiveLayout
    /// Replicated mode: fewer connected replicas than this means writes cannot succeed (not ready).
    let requiredReplicas: Int
    let redisAddress: String
    let openAPIDocument: ByteBuffer
    let metrics: ServiceMetrics
    /// While draining, `/readyz` answers 503 `draining` whatever Redis says.
    let drain: Drain

    func addRoutes(to router: Router<Context>) {
        router.get("healthz") { _, _ in Self.alive }
        router.get("readyz", use: ready)
        router.get("metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: metrics.exposition())
            )
        }
        router.get("openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: openAPIDocument))
        }
    }

    /// `GET /healthz`: the process is up and serving HTTP (Redis is not asked).
    static var alive: Response { JSONResponse.make(.ok, aliveBody) }
    /// Made once: every answer shares its bytes (a buffer is copied only when written to).
    private static let aliveBody = ByteBuffer(string: #"{"status":"ok"}"#)

    /// 200 when Redis takes a write now (in Cluster mode: every slot is served by a primary that
    /// answers as one) and the fleet's storage layout is known, which it reports; 503 `storage_unavailable` saying why otherwise, and 503 `draining` once a
    /// shutdown has begun.
    @Sendable func ready(_ request: Request, context: Context) async throws -> Response {
        if drain.isDraining {
            throw APIError(
                status: .serviceUnavailable, code: "draining",
                message: "this instance is shutting down: send requests to another", headers: [.retryAfter: "1"]
            )
        }
        let topology: SessionStore.Topology
        do {
            topology = try await store.checkWritable(instance: instance)
        } catch {
            let reason: String = switch error {
            case .unavailable(let cause): "Redis at \(redisAddress) is not writable: \(cause)"
            default: "Redis at \(redisAddress) is not usable: \(error)"
            }
            throw APIError.storageUnavailable(reason)
        }
        guard let active = layout.active else {
            throw APIError.storageUnavailable("this instance has not yet learned the fleet's storage layout from Redis at \(redisAddress)")
        }
        var writer = JSONWriter()
        writer.raw(#"{"status":"ready","redis":"#)
        writer.string(redisAddress)
        writer.raw(#","layout":{"active":"#)
        writer.integer(Int64(active))
        writer.raw(#","newest_supported":"#)
        writer.integer(Int64(SessionLayout.newest.rawValue))
        writer.raw("}")
        switch topology {
        case .primary(let primary):
            try checkReplicas(primary.connectedReplicas, of: primary.endpoint)
            writer.raw(#","primary":{"address":"#)
            writer.string(primary.endpoint.description)
            writer.raw(#","role":"#)
            writer.string(primary.role)
            writer.raw(#","connected_replicas":"#)
            writer.integer(Int64(primary.connectedReplicas))
            writer.raw(#","found_by":"#)
            writer.string(primary.foundBy)
            writer.raw("}")
        case .cluster(let cluster):
            try checkCluster(cluster)
            writer.raw(#","cluster":{"covered_slots":"#)
            writer.integer(Int64(cluster.coveredSlots))
            writer.raw(#","nodes":["#)
            for (index, node) in cluster.nodes.enumerated() {
                if index > 0 { writer.raw(",") }
                writer.raw(#"{"address":"#)
                writer.string(node.endpoint.description)
                writer.raw(#","role":"#)
                writer.string(node.role)
                writer.raw(#","slots":["#)
                for (rangeIndex, range) in node.slotRanges.enumerated() {
                    writer.raw(rangeIndex > 0 ? ",[" : "[")
                    writer.integer(Int64(range.lowerBound))
                    writer.raw(",")
                    writer.integer(Int64(range.upperBound))
                    writer.raw("]")
                }
                writer.raw(#"],"replicas":["#)
                for (replicaIndex, replica) in node.replicas.enumerated() {
                    if replicaIndex > 0 { writer.raw(",") }
                    writer.string(replica.description)
                }
                writer.raw(#"],"connected_replicas":"#)
                writer.integer(Int64(node.connectedReplicas))
                writer.raw("}")
            }
            writer.raw("]}")
        }
        writer.raw("}")
        return JSONResponse.make(.ok, writer.buffer)
    }

    /// Replicated mode: fewer connected replicas than required means writes cannot succeed.
    private func checkReplicas(_ connected: Int, of primary: RedisEndpoint) throws {
        if connected < requiredReplicas {
            throw APIError.storageUnavailable(
                "the primary \(primary) has \(connected) replicas; replicated writes need \(requiredReplicas)"
            )
        }
    }

    /// Every slot served, every primary reachable and a master, with enough replicas.
    private func checkCluster(_ cluster: RedisClusterStatus) throws {
        for node in cluster.nodes {
            if let error = node.error {
                throw APIError.storageUnavailable("the cluster primary \(node.endpoint) is not reachable: \(error)")
            }
            if node.role != "master" {
                throw APIError.storageUnavailable("the cluster node \(node.endpoint) serves slots but is a \(node.role), not a primary")
            }
            try checkReplicas(node.connectedReplicas, of: node.endpoint)
        }
        if cluster.coveredSlots < HashSlot.count {
            throw APIError.storageUnavailable(
                "\(HashSlot.count - cluster.coveredSlots) of \(HashSlot.count) cluster slots are served by no primary"
            )
        }
    }

    /// The contract shipped with the binary (Resources/openapi.yaml; the repository root links to it).
    static func loadOpenAPIDocument() throws -> ByteBuffer {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
            throw ConfigurationError(setting: "openapi.yaml", reason: "the bundled contract is missing")
        }
        return ByteBuffer(bytes: try Data(contentsOf: url))
    }
}
