import Testing

@testable import RedisClient

/// The one retry table, case by case: what the send loop does after each error, for each
/// deployment. No processes, no sockets, no clock but the one the tests pass in.
@Suite struct CommandAttemptTests {
    let node = RedisEndpoint(host: "127.0.0.1", port: 7000)
    let other = RedisEndpoint(host: "127.0.0.1", port: 7001)
    let now = ContinuousClock.now

    func attempt(_ deployment: CommandAttempt.Deployment, idempotent: Bool = true, libraries: Bool = true) -> CommandAttempt {
        CommandAttempt(deployment: deployment, idempotent: idempotent, canReloadFunctions: libraries, deadline: now + .seconds(5))
    }

    func next(_ deployment: CommandAttempt.Deployment, _ error: RedisClientError, idempotent: Bool = true) -> CommandAttempt.Action {
        var attempt = attempt(deployment, idempotent: idempotent)
        return attempt.next(after: error, from: node, now: now)
    }

    static let failoverDeployments: [CommandAttempt.Deployment] = [.sentinel, .cluster]

    @Test(arguments: failoverDeployments)
    func whatNeverReachedAPrimaryIsRetriedEvenWhenNotIdempotent(_ deployment: CommandAttempt.Deployment) {
        #expect(next(deployment, .connectionFailed("refused"), idempotent: false) == .retry(after: .milliseconds(10), notice: .unreachable(node)))
        #expect(next(deployment, .notPrimary("a replica"), idempotent: false) == .retry(after: .milliseconds(10), notice: .unreachable(node)))
        #expect(next(deployment, .serverError("READONLY You can't write against a read only replica."), idempotent: false)
            == .retry(after: .milliseconds(10), notice: .notPrimary(node)))
        #expect(next(deployment, .serverError("MASTERDOWN Link with MASTER is down"), idempotent: false)
            == .retry(after: .milliseconds(10), notice: .notPrimary(node)))
        for refusal in ["LOADING Redis is loading", "BUSY Redis is busy running a script", "TRYAGAIN Multiple keys", "NOREPLICAS Not enough good replicas"] {
            #expect(next(deployment, .serverError(refusal), idempotent: false) == .retry(after: .milliseconds(10), notice: nil), "\(refusal)")
        }
        #expect(next(deployment, .serverError("CLUSTERDOWN The cluster is down"), idempotent: false) == .retry(after: .milliseconds(10), notice: .clusterDown))
    }

    @Test(arguments: failoverDeployments)
    func anUnknownOutcomeIsRetriedOnlyWhenARepeatIsHarmless(_ deployment: CommandAttempt.Deployment) {
        for error in [RedisClientError.connectionClosed("reset"), .timeout("no reply")] {
            #expect(next(deployment, error, idempotent: true) == .retry(after: .milliseconds(10), notice: .unreachable(node)))
            #expect(next(deployment, error, idempotent: false) == .fail(error))
        }
    }

    /// The replicated host crash: the primary died with its replicas' link, so its WAIT timed out
    /// before any sentinel announced a failover. The write's id makes a repeat harmless.
    @Test(arguments: failoverDeployments)
    func aReplicaWaitThatTimedOutIsRetriedWhenARepeatIsHarmless(_ deployment: CommandAttempt.Deployment) {
        let error = RedisClientError.durabilityTimeout("0 of 1 replicas")
        #expect(next(deployment, error, idempotent: true) == .retry(after: .milliseconds(10), notice: nil))
        #expect(next(deployment, error, idempotent: false) == .fail(error))
    }

    @Test func oneServerRetriesOnlyAConnectionItClosedUnderAnIdempotentCommand() {
        let closed = RedisClientError.connectionClosed("reset")
        #expect(next(.server, closed, idempotent: true) == .retry(after: .milliseconds(10), notice: .unreachable(node)))
        #expect(next(.server, closed, idempotent: false) == .fail(closed))
        // Nothing to fail over to: the caller hears at once that Redis cannot be used.
        for error in [
            RedisClientError.connectionFailed("refused"), .timeout("no reply"), .durabilityTimeout("0 of 1"),
            .serverError("READONLY replica"), .serverError("LOADING"),
        ] {
            #expect(next(.server, error, idempotent: true) == .fail(error), "\(error)")
        }
    }

    @Test(arguments: [CommandAttempt.Deployment.server, .sentinel, .cluster])
    func theCommandsOwnErrorsAndFaultsAreNeverRetried(_ deployment: CommandAttempt.Deployment) {
        for error in [
            RedisClientError.serverError("WRONGTYPE Operation against a key holding the wrong kind of value"),
            .serverError("ERR unknown command"), .serverError("OOM command not allowed"), .serverError("NOPERM"),
            .authenticationFailed("WRONGPASS"), .protocolError("garbage"), .invalidCommand("empty"), .shutDown,
        ] {
            #expect(next(deployment, error) == .fail(error), "\(error)")
        }
    }

    @Test func redirectsAreFollowedInClusterModeUpToTheLimit() {
        var attempt = attempt(.cluster)
        let moved = RedisClientError.serverError("MOVED 42 127.0.0.1:7001")
        #expect(attempt.next(after: moved, from: node, now: now) == .redirect(ClusterRedirect(kind: .moved, slot: 42, endpoint: other)))
        let ask = RedisClientError.serverError("ASK 42 :7001")
        #expect(attempt.next(after: ask, from: node, now: now) == .redirect(ClusterRedirect(kind: .ask, slot: 42, endpoint: other)),
                "an empty host is the answering node's")
        for _ in 3...CommandAttempt.maximumRedirects { _ = attempt.next(after: moved, from: node, now: now) }
        guard case .fail(let error) = attempt.next(after: moved, from: node, now: now) else {
            Issue.record("a sixth redirect should fail the command")
            return
        }
        #expect(error.code == .connectionFailed)
        // Outside a cluster a MOVED is just an error.
        #expect(next(.sentinel, moved) == .fail(moved))
    }

    @Test func aMissingFunctionIsReloadedOnceAndOnlyWithLibraries() {
        let missing = RedisClientError.serverError("ERR Function not found")
        for deployment in [CommandAttempt.Deployment.server, .sentinel, .cluster] {
            var withLibraries = attempt(deployment)
            #expect(withLibraries.next(after: missing, from: node, now: now) == .reloadFunctions)
            #expect(withLibraries.next(after: missing, from: node, now: now) == .fail(missing), "a second miss fails")
            var without = attempt(deployment, libraries: false)
            #expect(without.next(after: missing, from: node, now: now) == .fail(missing))
        }
    }

    @Test func pausesDoubleToTheCapAndNoRetryStartsPastTheDeadline() {
        var attempt = attempt(.sentinel)
        let refused = RedisClientError.connectionFailed("refused")
        var pauses: [Duration] = []
        var clock = now
        while case .retry(let pause, _) = attempt.next(after: refused, from: nil, now: clock) {
            pauses.append(pause)
            clock += pause
        }
        #expect(Array(pauses.prefix(6)) == [10, 20, 40, 80, 160, 200].map { Duration.milliseconds($0) })
        #expect(pauses.allSatisfy { $0 <= CommandAttempt.maximumPause })
        #expect(clock < attempt.deadline, "the last retry started before the deadline")
        #expect(clock + .milliseconds(200) >= attempt.deadline, "and retries went on until it was near")
        #expect(attempt.next(after: refused, from: nil, now: attempt.deadline) == .fail(refused))
    }

    @Test func aFailureWithoutANodeTellsTheTopologyNothing() {
        var attempt = attempt(.cluster)
        #expect(attempt.next(after: .connectionFailed("no node serves slot 7"), from: nil, now: now) == .retry(after: .milliseconds(10), notice: nil))
    }

    @Test func temporaryRefusalsAreTheRetriedRefusalsAndOutOfMemory() {
        for prefix in ["READONLY", "MASTERDOWN", "LOADING", "BUSY", "TRYAGAIN", "NOREPLICAS", "CLUSTERDOWN", "OOM"] {
            #expect(RedisClientError.serverError("\(prefix) x").isTemporaryRefusal, "\(prefix)")
        }
        #expect(!RedisClientError.serverError("ERR syntax").isTemporaryRefusal)
        #expect(!RedisClientError.timeout("x").isTemporaryRefusal)
    }
}
