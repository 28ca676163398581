import Foundation
import Logging
import RedisClient
import RedisTestSupport
import SessionService
import Synchronization

/// A real sessiond application, in process, serving HTTP on a free loopback port against a real
/// redis-server. Tests talk to it only over HTTP (``HTTPTestClient``).
///
/// It keeps the Redis it was started on alive, and shuts down when the test lets go of it (a
/// test that throws before ``stop()`` included), so no test leaves a service running.
final class TestService: Sendable {
    let port: Int
    private let task: Task<Void, any Error>
    let backend: Backend

    private init(port: Int, task: Task<Void, any Error>, backend: Backend) {
        self.port = port
        self.task = task
        self.backend = backend
    }

    deinit {
        task.cancel()
    }

    static func start(
        redis: RedisServer,
        logs: LogCapture? = nil,
        configure: (inout SessionServiceConfiguration) -> Void = { _ in }
    ) async throws -> TestService {
        try await start(on: .single(redis), logs: logs, configure: configure)
    }

    /// sessiond on `backend`, configured further by `configure`; with `logs`, everything it logs
    /// (debug and up) is kept there.
    static func start(
        on backend: Backend,
        logs: LogCapture? = nil,
        configure: (inout SessionServiceConfiguration) -> Void = { _ in }
    ) async throws -> TestService {
        var configuration = SessionServiceConfiguration()
        configuration.port = 0
        backend.configure(&configuration)
        configuration.instance = "test"
        // The first command of a new instance connects and loads the functions; at the suite's
        // start, with every suite starting servers at once, that can outlast the 2 s default.
        // Tests that judge a deadline set their own.
        configuration.redisTimeout = .seconds(5)
        configure(&configuration)
        var logger = logs.map { logs in Logger(label: "sessiond-test") { _ in logs.handler } } ?? Logger(label: "sessiond-test")
        logger.logLevel = logs == nil ? .critical : .debug
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let application = try SessionServiceApplication.build(configuration: configuration, logger: logger) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let task = Task { try await application.runService(gracefulShutdownSignals: []) }
        let port = await withTaskGroup(of: Int?.self) { group in
            group.addTask { await ports.first { _ in true } }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))  // a deadline on start-up, not a wait for a condition
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let port else {
            task.cancel()
            throw TestServerError("sessiond did not start listening within 10 s")
        }
        let service = TestService(port: port, task: task, backend: backend)
        await service.awaitFleetLayout()
        return service
    }

    /// Until the instance has heard the fleet's storage layout (it starts serving after
    /// `redisTimeout` even when it has not, writing layout 1 meanwhile; a loaded machine can take
    /// that long to answer its first announcement), so that tests see a fresh Redis in the newest
    /// layout. Stops waiting when /readyz gives any other answer (Redis down, say): that is the
    /// test's to judge.
    private func awaitFleetLayout() async {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            guard let ready = try? await request("GET", "/readyz"), ready.status == 503,
                ready.text.contains("has not yet learned the fleet's storage layout")
            else { return }
            try? await Task.sleep(for: .milliseconds(50))  // polling, with the deadline above
        }
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }

    // MARK: - HTTP

    func request(_ method: String, _ path: String, headers: [(String, String)] = [], json: String? = nil) async throws -> HTTPTestResponse {
        if let json {
            return try await HTTPTestClient.request(method, port: port, path, headers: headers, json: json)
        }
        return try await HTTPTestClient.request(method, port: port, path, headers: headers)
    }

    /// Creates a session; returns the token and the parsed session object.
    func create(_ json: String = "{}", headers: [(String, String)] = []) async throws -> (token: String, session: [String: Any]) {
        let response = try await request("POST", "/v1/sessions", headers: headers, json: json)
        guard response.status == 201, let object = response.jsonObject,
            let token = object["token"] as? String, let session = object["session"] as? [String: Any]
        else {
            throw TestServerError("create failed: \(response.status) \(response.text)")
        }
        return (token, session)
    }

    func get(_ token: String, query: String = "") async throws -> HTTPTestResponse {
        try await request("GET", "/v1/session\(query)", headers: [("X-Session-Token", token)])
    }

    func patch(_ token: String, _ json: String, ifMatch: String? = nil) async throws -> HTTPTestResponse {
        var headers = [("X-Session-Token", token)]
        if let ifMatch { headers.append(("If-Match", ifMatch)) }
        return try await request("PATCH", "/v1/session", headers: headers, json: json)
    }
}

/// Every line a sessiond logged, rendered with its metadata, for tests that check what is logged.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    var handler: Handler { Handler(capture: self) }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.lines.withLock { $0.append("\(event.level) \(event.message) \(rendered)") }
        }
    }
}

extension HTTPTestResponse {
    /// The body parsed as a JSON object, or nil.
    var jsonObject: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])) as? [String: Any]
    }

    /// `error.code` of an error body.
    var errorCode: String? {
        (jsonObject?["error"] as? [String: Any])?["code"] as? String
    }
}

extension SessionServiceConfiguration {
    /// Sentinel mode: the primary is found through `sentinels`. The URL's host and port are then
    /// unused (its credentials and database still apply), so they point nowhere.
    mutating func findPrimary(through sentinels: [RedisServer]) {
        self.sentinels = sentinels.map { RedisEndpoint(host: "127.0.0.1", port: $0.port) }
        redisURL = "redis://127.0.0.1:1"
    }
}
