import Glibc
import HummingbirdCore
import Logging
import Metrics

/// At most `maximum` open HTTP connections: at the limit the server stops accepting (Hummingbird
/// withholds reads on the listening socket, so new connections wait in its backlog) until one
/// closes, and the connections already open keep being served. Each time the limit is reached is
/// logged once and counted in `sessiond_http_connection_limit_reached_total`; the open connections are
/// `sessiond_http_connections`.
///
/// Runs on the listening socket's event loop. A read accepts a few connections at once, so a burst
/// can pass the limit by up to three.
struct ConnectionLimit: AvailableConnectionsDelegate {
    let maximum: Int
    let logger: Logger
    private let reached: Counter
    private let openGauge: Gauge
    private var open = 0
    private var atLimit = false

    init(maximum: Int, logger: Logger, metricsFactory: any MetricsFactory) {
        self.maximum = maximum
        self.logger = logger
        reached = Counter(label: "sessiond_http_connection_limit_reached_total", factory: metricsFactory)
        openGauge = Gauge(label: "sessiond_http_connections", factory: metricsFactory)
    }

    mutating func connectionOpened() {
        open += 1
        openGauge.record(open)
        if open >= maximum, !atLimit {
            atLimit = true
            reached.increment()
            logger.warning(
                "connection limit reached: new connections wait until one closes",
                metadata: ["open": "\(open)", "limit": "\(maximum)"]
            )
        }
    }

    mutating func connectionClosed() {
        open -= 1
        openGauge.record(open)
        if atLimit, open < maximum {
            atLimit = false
            logger.info("below the connection limit again: accepting", metadata: ["open": "\(open)", "limit": "\(maximum)"])
        }
    }

    func isAcceptingNewConnections() -> Bool {
        open < maximum
    }
}

/// The process' limit on open file descriptors, which every connection (HTTP and Redis) takes one of.
enum DescriptorLimit {
    /// Descriptors kept out of the automatic connection limit: Redis connections (one per event
    /// loop per node), the sentinels', the event loops' own, and files.
    static let reserve = 128

    /// Raises the soft limit to the hard one (most hosts start processes at 1,024 with a far higher
    /// hard limit) and answers both, before and after.
    static func raise() -> (before: Int, now: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (-1, -1, -1) }
        let before = Int(clamping: limit.rlim_cur)
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return (before, Int(clamping: limit.rlim_cur), Int(clamping: limit.rlim_max))
    }

    /// The connection limit when none is configured: the descriptors less the ``reserve``, or half
    /// of them when there are few.
    static func connectionLimit(descriptors: Int) -> Int {
        max(1, descriptors > 2 * reserve ? descriptors - reserve : descriptors / 2)
    }
}
