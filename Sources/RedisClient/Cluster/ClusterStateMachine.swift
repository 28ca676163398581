import Foundation

/// The cluster topology's decisions as a value: the slot map in use, when to fetch a new one, and
/// from whom. No I/O: ``ClusterTopology`` runs the refresh rounds this plans, one loop at a time.
///
/// - One refresh loop per process. A trigger during a round (a MOVED, a broken connection) sets a
///   pending flag that earns one more round, so a thousand MOVEDs cost at most two refreshes.
/// - Rounds are at least ``minimumGap`` apart; failed rounds back off (100 ms × 1.25ⁿ, up to 5 s).
/// - While a primary whose connection broke is still in the map, the loop polls every
///   ``pollInterval`` until the map names another primary for its slots (after 10 s, every second).
/// - A map is taken when it covers at least as many slots as the current one; a source that answers
///   with less (a node that has not heard of a promotion, say) is tried again in the next round,
///   and after three such rounds in a row its map is believed.
/// - The seeds are never replaced by the addresses the cluster announces: they stay the last
///   sources of every round.
struct ClusterStateMachine {
    static var minimumGap: Duration { .milliseconds(100) }
    static var pollInterval: Duration { .milliseconds(200) }
    static var slowPollInterval: Duration { .seconds(1) }
    static var slowPollAfter: Duration { .seconds(10) }
    static var periodicInterval: Duration { .seconds(30) }

    /// What a round of the refresh loop does: wait `delay`, then ask `sources` in order.
    struct Round: Equatable {
        let delay: Duration
        let sources: [RedisEndpoint]
    }

    private(set) var map = ClusterSlotMap()
    let seeds: [RedisEndpoint]
    private(set) var isRefreshing = false
    private var isPending = false
    private var preferred: RedisEndpoint?
    /// Primaries whose connection broke, and since when: polled for until the map moves on.
    private(set) var failing: [RedisEndpoint: ContinuousClock.Instant] = [:]
    private var failedRounds = 0
    private var staleRounds = 0
    private var lastRoundStarted: ContinuousClock.Instant?
    private(set) var lastSuccess: ContinuousClock.Instant?

    init(seeds: [RedisEndpoint]) {
        self.seeds = seeds
    }

    /// Asks for a new map, from `preferring` first when given. Returns `true` when the caller must
    /// start the refresh loop (none is running); otherwise the running loop does one more round.
    mutating func requestRefresh(preferring: RedisEndpoint? = nil) -> Bool {
        if let preferring { preferred = preferring }
        if isRefreshing {
            isPending = true
            return false
        }
        isRefreshing = true
        return true
    }

    /// A node answered `MOVED slot endpoint`: the map follows it at once, and a refresh (asking
    /// that node first) confirms the rest. Returns whether to start the refresh loop.
    mutating func moved(slot: Int, to endpoint: RedisEndpoint) -> Bool {
        map.applyMoved(slot: slot, to: endpoint)
        return requestRefresh(preferring: endpoint)
    }

    /// A connection to `endpoint` could not be made or broke. Returns whether to start the loop.
    mutating func nodeFailed(_ endpoint: RedisEndpoint, now: ContinuousClock.Instant) -> Bool {
        if failing[endpoint] == nil, map.primaries.contains(endpoint) { failing[endpoint] = now }
        return requestRefresh()
    }

    /// A connection to `endpoint` was made: it is not failing.
    mutating func nodeConnected(_ endpoint: RedisEndpoint) {
        failing[endpoint] = nil
    }

    /// Whether the map is older than ``periodicInterval`` (or there is none) and no loop runs: the
    /// refresh that catches changes nobody was redirected by. Returns whether to start the loop.
    mutating func refreshIfDue(now: ContinuousClock.Instant) -> Bool {
        guard !isRefreshing else { return false }
        if let lastSuccess, now - lastSuccess < Self.periodicInterval, map.coveredSlots > 0 { return false }
        return requestRefresh()
    }

    /// Plans the loop's next round.
    mutating func nextRound(now: ContinuousClock.Instant) -> Round {
        var earliest = now
        if let last = lastRoundStarted {
            var gap = Self.minimumGap
            if failedRounds > 0 {
                let backoff = 0.1 * pow(1.25, Double(min(failedRounds - 1, 30)))
                gap = max(gap, .milliseconds(Int64(min(backoff, 5) * 1000)))
            } else if !isPending, let oldest = failing.values.min() {
                gap = now - oldest < Self.slowPollAfter ? Self.pollInterval : Self.slowPollInterval
            }
            earliest = max(now, last + gap)
        }
        lastRoundStarted = earliest
        isPending = false
        var sources: [RedisEndpoint] = []
        func add(_ node: RedisEndpoint) {
            if !sources.contains(node) { sources.append(node) }
        }
        if let preferred { add(preferred) }
        for node in map.nodes + seeds where failing[node] == nil { add(node) }
        // A failing node is asked last: it may have come back.
        for node in failing.keys.sorted(by: { $0.description < $1.description }) { add(node) }
        preferred = nil
        return Round(delay: earliest - now, sources: sources)
    }

    /// A round ended with the map a source gave (`nil`: no source answered). Returns whether the
    /// loop runs another round; when not, the loop ends.
    mutating func roundFinished(_ answer: ClusterSlotMap?, now: ContinuousClock.Instant) -> Bool {
        if let answer {
            if answer.coveredSlots >= map.coveredSlots || staleRounds >= 2 {
                map = answer
                lastSuccess = now
                failedRounds = 0
                staleRounds = 0
                let primaries = answer.primaries
                failing = failing.filter { primaries.contains($0.key) }
            } else {
                staleRounds += 1
                isPending = true
            }
        } else {
            failedRounds += 1
        }
        let again = isPending || !failing.isEmpty || (answer == nil && map.coveredSlots == 0)
        if !again { isRefreshing = false }
        return again
    }

    /// The loop was stopped (shutdown): nothing runs any more.
    mutating func loopStopped() {
        isRefreshing = false
    }
}
