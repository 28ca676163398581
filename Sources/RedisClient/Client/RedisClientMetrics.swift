import Metrics
import Synchronization

/// What a ``RedisClient`` reports through swift-metrics, when given a factory:
///
/// - `redis_command_duration_seconds{command}`: each command's round trip (FCALL named with its
///   function, e.g. `FCALL session_write`), retries during a failover included;
/// - `redis_command_errors_total{command, code}`: failed commands by ``RedisClientError`` code, except
///   that a server refusing writes (`READONLY`, `NOREPLICAS`, `MASTERDOWN`) counts as `read_only`, so
///   an alert can tell a read-only Redis from a command's own error;
/// - `redis_primary_changes_total`: times the confirmed primary moved to another server (failovers
///   seen; the first primary found does not count);
/// - `redis_primary{address}`: 1 for the primary in use, 0 for ones used before;
/// - Cluster mode: `redis_cluster_redirects_total{kind="moved"|"ask"}`,
///   `redis_cluster_topology_refreshes_total{result="ok"|"failed"}` (rounds of the refresh loop),
///   `redis_cluster_node_commands_total{node}` (commands sent to each node, retries included).
///
/// - `redis_durability_retries_total`: writes whose replica wait (`WAIT`) timed out and that were
///   sent again because a failover may have been under way (each such write is either
///   acknowledged later or fails with `durability_timeout`);
/// - Sentinel mode: `redis_sentinel_watch_failures_total`: failed attempts to subscribe to a
///   sentinel's failover announcements (they are retried every second).
///
/// Metric objects are made once per label set and kept, so a command costs a dictionary lookup.
final class RedisClientMetrics: Sendable {
    private let factory: any MetricsFactory
    private let timers = Mutex<[CommandKey: Timer]>([:])
    private let errors = Mutex<[String: Counter]>([:])
    private let primaries = Mutex<(current: RedisEndpoint?, gauges: [RedisEndpoint: Gauge])>((nil, [:]))
    private let primaryChanges: Counter
    private let redirects: [ClusterRedirect.Kind: Counter]
    private let refreshes: (ok: Counter, failed: Counter)
    private let nodeCommands = Mutex<[RedisEndpoint: Counter]>([:])
    private let durabilityRetries: Counter
    private let sentinelWatchFailures: Counter

    init(factory: any MetricsFactory) {
        self.factory = factory
        primaryChanges = Counter(label: "redis_primary_changes_total", factory: factory)
        durabilityRetries = Counter(label: "redis_durability_retries_total", factory: factory)
        sentinelWatchFailures = Counter(label: "redis_sentinel_watch_failures_total", factory: factory)
        redirects = [
            .moved: Counter(label: "redis_cluster_redirects_total", dimensions: [("kind", "moved")], factory: factory),
            .ask: Counter(label: "redis_cluster_redirects_total", dimensions: [("kind", "ask")], factory: factory),
        ]
        refreshes = (
            Counter(label: "redis_cluster_topology_refreshes_total", dimensions: [("result", "ok")], factory: factory),
            Counter(label: "redis_cluster_topology_refreshes_total", dimensions: [("result", "failed")], factory: factory)
        )
    }

    func recordDurabilityRetry() {
        durabilityRetries.increment()
    }

    func recordSentinelWatchFailure() {
        sentinelWatchFailures.increment()
    }

    func recordRedirect(_ kind: ClusterRedirect.Kind) {
        redirects[kind]?.increment()
    }

    func recordRefresh(succeeded: Bool) {
        (succeeded ? refreshes.ok : refreshes.failed).increment()
    }

    func recordCommand(to node: RedisEndpoint) {
        nodeCommands.withLock { counters in
            if let counter = counters[node] { return counter }
            let counter = Counter(label: "redis_cluster_node_commands_total", dimensions: [("node", node.description)], factory: factory)
            counters[node] = counter
            return counter
        }.increment()
    }

    /// The `code` label of a failed command.
    static func errorCode(_ error: any Error) -> String {
        guard let error = error as? RedisClientError else { return error is CancellationError ? "cancelled" : "other" }
        switch error.serverErrorPrefix {
        case "READONLY", "NOREPLICAS", "MASTERDOWN": return "read_only"
        default: return error.code.description
        }
    }

    func recordCommand(_ arguments: [RedisArgument], duration: Duration, error: (any Error)?) {
        // Looked up by the command's raw bytes: the label text is built only the first time.
        let key = CommandKey(arguments)
        let timer = timers.withLock { timers in
            if let timer = timers[key] { return timer }
            let timer = Timer(label: "redis_command_duration_seconds", dimensions: [("command", key.label)], factory: factory)
            timers[key] = timer
            return timer
        }
        timer.record(duration: duration)
        guard let error else { return }
        let code = Self.errorCode(error)
        errors.withLock { errors in
            let errorKey = key.label + "|" + code
            if let counter = errors[errorKey] { return counter }
            let counter = Counter(label: "redis_command_errors_total", dimensions: [("command", key.label), ("code", code)], factory: factory)
            errors[errorKey] = counter
            return counter
        }.increment()
    }

    func recordPrimary(_ endpoint: RedisEndpoint) {
        let (previous, gauges) = primaries.withLock { state -> (RedisEndpoint?, (old: Gauge?, new: Gauge)?) in
            let previous = state.current
            guard previous != endpoint else { return (previous, nil) }
            state.current = endpoint
            let new = state.gauges[endpoint] ?? Gauge(label: "redis_primary", dimensions: [("address", endpoint.description)], factory: factory)
            state.gauges[endpoint] = new
            return (previous, (previous.flatMap { state.gauges[$0] }, new))
        }
        guard let gauges else { return }
        gauges.old?.record(0)
        gauges.new.record(1)
        if previous != nil { primaryChanges.increment() }
    }

    /// A command as metrics know it: its first word, and for FCALL the function too. Never a key or
    /// a value, so no session data reaches the metrics.
    struct CommandKey: Hashable {
        let command: RedisArgument
        let function: RedisArgument?

        init(_ arguments: [RedisArgument]) {
            command = arguments.first ?? RedisArgument("")
            // FCALL or FCALL_RO, in any case (0xDF clears the lowercase bit of ASCII letters).
            let isFunctionCall = command.withUnsafeBytes { name in name.count >= 5 && zip(name, Self.fcall).allSatisfy { $0 & 0xDF == $1 } }
            function = isFunctionCall && arguments.count > 1 ? arguments[1] : nil
        }

        private static let fcall = Array("FCALL".utf8)

        var label: String {
            let name = String(decoding: command.bytes, as: UTF8.self).uppercased()
            guard let function else { return name.isEmpty ? "none" : name }
            return name + " " + String(decoding: function.bytes, as: UTF8.self)
        }
    }
}
