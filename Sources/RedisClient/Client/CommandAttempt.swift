/// Every "what now?" of one command after an error, for every deployment, as a value: retry after a
/// pause, follow a redirect, reload the functions, or fail. ``RedisClient``'s one send loop carries
/// out what it returns; nothing else decides whether a command is sent again.
///
/// The rules, in one table (`next(after:from:now:)`):
/// - **Never applied** (no connection could be made, the server is not a primary: `connectionFailed`,
///   `notPrimary`, `READONLY`, `MASTERDOWN`, `LOADING`, `BUSY`, `TRYAGAIN`, `CLUSTERDOWN`,
///   `NOREPLICAS`): retried, with Sentinel or Cluster, until the failover deadline.
/// - **Unknown outcome** (`connectionClosed`, `timeout`, and with replicas required a
///   `durabilityTimeout`: the write is on a primary that may be dying): retried only for an
///   idempotent command (one whose repeat has the effect of one send), until the deadline.
/// - **One server** has no failover to wait for: only a connection the server closed under an
///   idempotent command is retried (a restart, `CLIENT KILL`, a proxy); anything else fails at once.
/// - **Redirects** (Cluster only): `MOVED` and `ASK` are followed at once, at most
///   ``maximumRedirects`` times.
/// - **A missing function** ("Function not found": a restart, a failover, `FUNCTION FLUSH`, a node
///   newly given slots): the libraries are loaded where it was missing and the command is sent again,
///   once (a function that was not found did not run).
///
/// Pauses follow one schedule: ``initialPause`` doubling to ``maximumPause``; a retry that would
/// start past the deadline fails with the last error instead.
struct CommandAttempt {
    /// How the client reaches Redis, as far as retrying is concerned.
    enum Deployment: Sendable {
        /// One server: nothing to fail over to.
        case server
        /// A primary found through Sentinel.
        case sentinel
        /// A Redis Cluster: redirects, and a failover per shard.
        case cluster
    }

    /// What the send loop does next.
    enum Action: Equatable {
        /// Send again after `pause`, first telling the topology what the error said about `node`.
        case retry(after: Duration, notice: Notice?)
        /// Send to `endpoint` now (after `ASKING` when `asking`); a `MOVED` also updates the map.
        case redirect(ClusterRedirect)
        /// Load the function libraries on the node that answered, then send the command there again.
        case reloadFunctions
        /// Give up: the caller gets this error.
        case fail(RedisClientError)
    }

    /// What a failed attempt tells the topology about a node.
    enum Notice: Equatable {
        /// The node could not be reached or did not answer: look for the primary again.
        case unreachable(RedisEndpoint)
        /// The node answered that it is not a writable primary: stop using it and look again.
        case notPrimary(RedisEndpoint)
        /// The cluster says it is down: refresh the slot map.
        case clusterDown
    }

    static let initialPause = Duration.milliseconds(10)
    static let maximumPause = Duration.milliseconds(200)
    /// Redirects one command may follow: a healthy cluster needs at most two (a `MOVED` during a
    /// migration, then an `ASK`).
    static let maximumRedirects = 5

    let deployment: Deployment
    /// Whether a repeat of the command has the effect of sending it once.
    let idempotent: Bool
    /// Whether a missing function can be loaded (the client was given libraries).
    let canReloadFunctions: Bool
    let deadline: ContinuousClock.Instant
    private(set) var pause = Self.initialPause
    private(set) var redirects = 0
    private(set) var reloadedFunctions = false

    init(deployment: Deployment, idempotent: Bool, canReloadFunctions: Bool, deadline: ContinuousClock.Instant) {
        self.deployment = deployment
        self.idempotent = idempotent
        self.canReloadFunctions = canReloadFunctions
        self.deadline = deadline
    }

    /// The next step after `error`, which `node` gave (`nil` when no node was reached: no route yet).
    mutating func next(after error: RedisClientError, from node: RedisEndpoint?, now: ContinuousClock.Instant) -> Action {
        if deployment == .cluster, let node, let redirect = ClusterRedirect(error, answeredBy: node) {
            redirects += 1
            guard redirects <= Self.maximumRedirects else {
                return .fail(.connectionFailed("gave up after \(Self.maximumRedirects) Redis Cluster redirects; the last: \(error.message)"))
            }
            return .redirect(redirect)
        }
        if error.isFunctionNotFound, canReloadFunctions, !reloadedFunctions {
            reloadedFunctions = true
            return .reloadFunctions
        }
        guard case .retry(let notice) = verdict(on: error, from: node) else { return .fail(error) }
        guard now + pause < deadline else { return .fail(error) }
        defer { pause = min(pause * 2, Self.maximumPause) }
        return .retry(after: pause, notice: notice)
    }

    private enum Verdict {
        case retry(Notice?)
        case fail
    }

    /// Whether `error` is worth another attempt, and what it says about the node.
    private func verdict(on error: RedisClientError, from node: RedisEndpoint?) -> Verdict {
        let unreachable = node.map { Notice.unreachable($0) }
        if deployment == .server {
            // No failover to wait for: only a server that closed the connection is tried again.
            return error.code == .connectionClosed && idempotent ? .retry(unreachable) : .fail
        }
        switch error.code {
        case .connectionFailed, .notPrimary:
            return .retry(unreachable)  // never reached a primary: not applied
        case .connectionClosed, .timeout:
            return idempotent ? .retry(unreachable) : .fail  // may or may not have run
        case .durabilityTimeout:
            // Applied on a primary that its replicas did not confirm: a failover may be taking it
            // away (its host died with the link to them), so whether the write survives is unknown.
            return idempotent ? .retry(nil) : .fail
        case .serverError:
            switch error.serverErrorPrefix {
            case "READONLY", "MASTERDOWN": return .retry(node.map { Notice.notPrimary($0) })
            case "CLUSTERDOWN": return .retry(.clusterDown)
            case "LOADING", "BUSY", "TRYAGAIN", "NOREPLICAS": return .retry(nil)
            default: return .fail
            }
        default:
            return .fail
        }
    }
}

extension RedisClientError {
    /// Redis' answer to `FCALL` of a function it does not have.
    var isFunctionNotFound: Bool {
        code == .serverError && message.hasPrefix("ERR Function not found")
    }
}

extension RedisClientError {
    /// Redis refused the command for now rather than for good: it is not a writable primary at the
    /// moment, busy, loading, out of memory, or its cluster is reconfiguring. What
    /// ``CommandAttempt`` retries is among these (all but `OOM`, which waiting does not mend);
    /// when one is still returned, the deadline for retrying passed.
    public var isTemporaryRefusal: Bool {
        switch serverErrorPrefix {
        case "READONLY", "MASTERDOWN", "LOADING", "BUSY", "TRYAGAIN", "NOREPLICAS", "CLUSTERDOWN", "OOM": true
        default: false
        }
    }
}
