import Metrics
import Hummingbird
import Prometheus
import Synchronization

/// The Prometheus registry of one sessiond application: HTTP metrics from ``MetricsMiddleware``,
/// Redis metrics from the RedisClient (through ``factory``), served as text on `/metrics`.
final class ServiceMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    private let requests = Mutex<[RequestKey: (count: CoreMetrics.Counter, duration: CoreMetrics.Timer)]>([:])

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Request and Redis latencies here are sub-millisecond to seconds.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        ]
        self.factory = factory
    }

    private struct RequestKey: Hashable {
        let method: String
        let route: String
        let status: Int
    }

    /// `sessiond_http_requests_total{method,route,status}` and
    /// `sessiond_http_request_duration_seconds{method,route,status}`. Labels come from bounded sets
    /// (known methods, route patterns, status codes), never from what a caller typed.
    func recordRequest(method: HTTPRequest.Method, route: String, status: HTTPResponse.Status, duration: Duration) {
        let method = switch method {
        case .get, .head, .post, .put, .patch, .delete, .options: method.rawValue
        default: "other"
        }
        let key = RequestKey(method: method, route: route, status: Int(status.code))
        let metrics = requests.withLock { requests in
            if let metrics = requests[key] { return metrics }
            let dimensions = [("method", method), ("route", route), ("status", String(key.status))]
            let metrics = (
                CoreMetrics.Counter(label: "sessiond_http_requests_total", dimensions: dimensions, factory: factory),
                CoreMetrics.Timer(label: "sessiond_http_request_duration_seconds", dimensions: dimensions, factory: factory)
            )
            requests[key] = metrics
            return metrics
        }
        metrics.count.increment()
        metrics.duration.record(duration: duration)
    }

    /// The Prometheus text exposition of everything recorded so far.
    func exposition() -> ByteBuffer {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 * 1024)
        registry.emit(into: &bytes)
        return ByteBuffer(bytes: bytes)
    }
}

/// Counts and times every request (errors included: it sits outside ``ErrorMiddleware``).
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = SessionRequestContext
    let metrics: ServiceMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let response = try await next(request, context)
        metrics.recordRequest(
            method: request.method, route: context.endpointPath ?? "unmatched", status: response.status,
            duration: .now - started
        )
        return response
    }
}
