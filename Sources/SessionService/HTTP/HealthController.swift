import Foundation
import Hummingbird
import RedisClient

/// Readiness, metrics and the contract. Liveness (`GET /healthz`) is answered from the event loop
/// by ``EventLoopRoutes``.
struct HealthController {
    typealias Context = SessionRequestContext
    let store: SessionStore
    let instance: String
    /// Replicated mode: fewer connected replicas than this means writes cannot succeed (not ready).
    let requiredReplicas: Int
    let redisAddress: String
    let openAPIDocument: ByteBuffer
    let metrics: ServiceMetrics

    func addRoutes(to router: Router<Context>) {
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
    static let alive = JSONResponse.make(.ok, ByteBuffer(string: #"{"status":"ok"}"#))

    /// 200 when Redis takes a write now; 503 `storage_unavailable` saying why otherwise.
    @Sendable func ready(_ request: Request, context: Context) async throws -> Response {
        let primary: RedisPrimaryStatus
        do {
            primary = try await store.checkWritable(instance: instance)
        } catch {
            let reason: String = switch error {
            case .unavailable(let cause): "Redis at \(redisAddress) is not writable: \(cause)"
            default: "Redis at \(redisAddress) is not usable: \(error)"
            }
            throw APIError.storageUnavailable(reason)
        }
        if primary.connectedReplicas < requiredReplicas {
            throw APIError.storageUnavailable(
                "the primary \(primary.endpoint) has \(primary.connectedReplicas) replicas; replicated writes need \(requiredReplicas)"
            )
        }
        var writer = JSONWriter()
        writer.raw(#"{"status":"ready","redis":"#)
        writer.string(redisAddress)
        writer.raw(#","primary":{"address":"#)
        writer.string(primary.endpoint.description)
        writer.raw(#","role":"#)
        writer.string(primary.role)
        writer.raw(#","connected_replicas":"#)
        writer.integer(Int64(primary.connectedReplicas))
        writer.raw(#","found_by":"#)
        writer.string(primary.foundBy)
        writer.raw("}}")
        return JSONResponse.make(.ok, writer.buffer).response
    }

    /// The contract shipped with the binary (Resources/openapi.yaml; the repository root links to it).
    static func loadOpenAPIDocument() throws -> ByteBuffer {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
            throw ConfigurationError(setting: "openapi.yaml", reason: "the bundled contract is missing")
        }
        return ByteBuffer(bytes: try Data(contentsOf: url))
    }
}
