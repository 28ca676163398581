/// The decisions of ``PrimaryResolver`` as a value: which server is the primary now, when to ask
/// the sentinels, and what an announcement, a failed connection or a lookup's answer changes.
///
/// Every method is one step taken under the resolver's lock, so no decision can see a state that
/// another caller changes halfway. It does no I/O: the resolver carries out what it returns.
/// `Lookup` is the handle of a lookup in flight (a `Task` in the resolver, anything in tests).
struct PrimaryStateMachine<Lookup> {
    /// What a caller asking for the primary does.
    enum Decision {
        /// Connect to this server; `source` says how it was found.
        case use(RedisEndpoint, source: String)
        /// Wait for this lookup (started now, or already in flight).
        case wait(Lookup)
    }

    /// What a lookup's answer means.
    enum LookupOutcome: Equatable {
        case use(RedisEndpoint, source: String)
        /// The sentinels still name a primary that a failover is leaving: do not use it yet.
        case fenced(RedisEndpoint)
    }

    /// How long a primary stays fenced after a failover away from it was announced.
    static var fenceDuration: Duration { .seconds(10) }

    private var candidate: (endpoint: RedisEndpoint, source: String)?
    /// The last server a connection's `ROLE` confirmed as the primary: used when no sentinel answers.
    private(set) var lastConfirmed: RedisEndpoint?
    /// A primary being failed over: never used until the fence expires, even if a sentinel (or
    /// `ROLE`) still calls it the primary, because writes it takes now would be lost.
    private var fence: (endpoint: RedisEndpoint, until: ContinuousClock.Instant)?
    private var inFlight: (lookup: Lookup, generation: Int)?
    /// Counts changes of the candidate by announcements and invalidations, so that a lookup's
    /// answer never overrides news that arrived while it was being asked.
    private var generation = 0

    init() {}

    /// Where to connect now: the candidate if there is one, else a lookup (one in flight at most;
    /// `startLookup` is called only when none is).
    mutating func primary(startLookup: () -> Lookup) -> Decision {
        if let candidate { return .use(candidate.endpoint, source: candidate.source) }
        if let inFlight { return .wait(inFlight.lookup) }
        let lookup = startLookup()
        inFlight = (lookup, generation)
        return .wait(lookup)
    }

    /// The sentinels answered `endpoint`: it becomes the candidate, unless it is fenced, or news
    /// that arrived during the lookup named another primary (which then wins).
    mutating func lookupSucceeded(_ endpoint: RedisEndpoint, source: String, now: ContinuousClock.Instant) -> LookupOutcome {
        let startedAt = inFlight?.generation ?? generation
        inFlight = nil
        if startedAt != generation, let candidate { return .use(candidate.endpoint, source: candidate.source) }
        if isFenced(endpoint, now: now) { return .fenced(endpoint) }
        candidate = (endpoint, source)
        return .use(endpoint, source: source)
    }

    /// The lookup failed: the next caller starts a new one.
    mutating func lookupFailed() {
        inFlight = nil
    }

    /// A sentinel announced a failover to `target`, away from `fenced`.
    mutating func announced(_ target: RedisEndpoint, leaving fenced: RedisEndpoint?, source: String, now: ContinuousClock.Instant) {
        candidate = (target, source)
        generation += 1
        if let fenced, fenced != target { fence = (fenced, now + Self.fenceDuration) }
    }

    /// `endpoint` is not (or no longer) a usable primary: the next caller asks the sentinels again.
    mutating func invalidate(_ endpoint: RedisEndpoint) {
        guard candidate?.endpoint == endpoint else { return }
        candidate = nil
        generation += 1
    }

    /// A connection's `ROLE` confirmed `endpoint` as the primary; returns whether that is a change.
    mutating func confirmed(_ endpoint: RedisEndpoint) -> Bool {
        defer { lastConfirmed = endpoint }
        return lastConfirmed != endpoint
    }

    private func isFenced(_ endpoint: RedisEndpoint, now: ContinuousClock.Instant) -> Bool {
        guard let fence else { return false }
        return fence.endpoint == endpoint && fence.until > now
    }
}
