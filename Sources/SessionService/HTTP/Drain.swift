import Logging
import ServiceLifecycle
import Synchronization

/// Whether sessiond is draining: shutting down, and telling load balancers and clients to go
/// elsewhere while it still serves. `/readyz` answers 503 `draining`, and every answer closes its
/// connection (`Connection: close`), so keep-alive clients move to another instance between two
/// requests instead of finding their socket dropped.
final class Drain: Sendable {
    private let draining = Atomic<Bool>(false)

    var isDraining: Bool { draining.load(ordering: .relaxed) }

    func begin() {
        draining.store(true, ordering: .relaxed)
    }
}

/// The first thing a graceful shutdown (SIGTERM) does: drain for `delay` while everything is still
/// served, so that load balancers and endpoint controllers stop sending first. It runs last among
/// the application's services, so it is the first to be shut down: the HTTP server stops
/// accepting only when this returns, then finishes the requests in flight, then Redis closes.
struct DrainService: Service {
    let drain: Drain
    let delay: Duration
    let logger: Logger

    func run() async throws {
        // Returns when a graceful shutdown begins (throws when the application is cancelled).
        try? await gracefulShutdown()
        drain.begin()
        logger.info("shutting down: draining (/readyz answers 503, every answer closes its connection), then stopping", metadata: ["delay": "\(delay)"])
        try? await Task.sleep(for: delay)
        logger.info("drained: no longer accepting connections; finishing the requests in flight")
    }
}
