import Logging
import Metrics
import RedisClient
import ServiceLifecycle

/// Ends sessions past their deadline and records their `session.expired` events (layout 3 with
/// events; see ``SessionEvents``), and on a Redis Cluster relays the buckets' outboxes into the
/// event log.
///
/// The 1,024 buckets are split into ``parts`` parts; an instance sweeps a part only while it holds
/// the part's lease (a key with a ``leaseLifetime`` TTL that its holder renews on every pass), so
/// exactly one instance sweeps a part at a time and any instance takes over within a lease's
/// lifetime when its holder dies. A pass runs every ``interval``: with deadlines kept in whole
/// seconds, a session's `session.expired` is recorded about 1–2 s after its deadline, and within
/// about 4 s when the instance sweeping it has just died.
struct EventSweeper: Service {
    static let parts = 16
    static let interval = Duration.milliseconds(500)
    static let leaseLifetime = Duration.seconds(2)
    /// The most sessions one sweep call ends (it goes on at once while more are overdue).
    static let batch = 500
    /// The most outbox entries one relay call moves.
    static let relayBatch = 200

    let events: SessionEvents
    let layout: ActiveLayout
    /// This instance's name in the leases (the fleet's announcement name: unique per process).
    let instance: String
    let logger: Logger
    private let batches: Counter
    private let leaseChanges: Counter
    private let overdueGauge: Gauge

    init(events: SessionEvents, layout: ActiveLayout, instance: String, logger: Logger, metricsFactory: any MetricsFactory) {
        self.events = events
        self.layout = layout
        self.instance = instance
        self.logger = logger
        batches = Counter(label: "sessiond_sweeper_batches_total", factory: metricsFactory)
        leaseChanges = Counter(label: "sessiond_sweeper_lease_changes_total", factory: metricsFactory)
        overdueGauge = Gauge(label: "sessiond_expiry_overdue_seconds", factory: metricsFactory)
    }

    private var redis: RedisClient { events.redis }
    private var keys: SessionKeys { events.keys }

    func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            if keys.outboxPerBucket { group.addTask { await relayLoop() } }
            var held = Set<Int>()
            var passes = 0
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                if layout.writing == .swept {
                    held = await pass(holding: held, checkingOutboxes: passes % Self.outboxCheckPasses == 0)
                    passes += 1
                }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
            }
            group.cancelAll()
        }
    }

    /// On a cluster, every this many passes the outboxes of the parts held are checked for events
    /// an instance that died left unrelayed (the instance that records an event relays it at once).
    static let outboxCheckPasses = 10

    /// One pass: renews or takes each part's lease, sweeps the parts held, and (holding part 0)
    /// trims the log by age, which appends also do but an idle log would not get.
    private func pass(holding before: Set<Int>, checkingOutboxes: Bool) async -> Set<Int> {
        var held = Set<Int>()
        var overdue: Int64 = 0
        // Redis' clock, for a cluster's cheap look at which buckets have anything due (each sweep
        // call decides by its own shard's clock).
        let now = try? await redis.send(["TIME"], options: .idempotent).array?.first?.string.flatMap { Int64($0) }
        // On one server the parts' 16 calls go at once (pipelined), so that a pass takes about one
        // round trip however loaded the machine: its length adds to how late an expiry is
        // recorded. On a cluster a part is already 64 concurrent probes; the parts go one by one.
        let concurrentParts = keys.outboxPerBucket ? 1 : Self.parts
        var outcomes: [(part: Int, held: Bool, overdue: Int64)] = []
        for first in stride(from: 0, to: Self.parts, by: concurrentParts) {
            outcomes += await sweepParts(first..<min(first + concurrentParts, Self.parts), now: now, checkingOutboxes: checkingOutboxes)
        }
        for outcome in outcomes where outcome.held {
            held.insert(outcome.part)
            overdue = max(overdue, outcome.overdue)
        }
        if held != before {
            leaseChanges.increment(by: held.symmetricDifference(before).count)
            logger.info("the expiry sweeper's leases changed", metadata: ["parts_held": "\(held.sorted())"])
        }
        if !held.isEmpty { overdueGauge.record(Double(overdue) / 1000) }
        if held.contains(0), let now {
            do {
                _ = try await redis.send(
                    ["XTRIM", RedisArgument(keys.eventLog), "MINID", "~", RedisArgument(now * 1000 - events.retention.milliseconds)],
                    options: .idempotent
                )
            } catch {
                logger.warning("could not trim the event log", metadata: ["error": "\(error)"])
            }
        }
        return held
    }

    /// Renews or takes the leases of `parts` at once and sweeps those held: (part, held, overdue ms).
    private func sweepParts(_ parts: Range<Int>, now: Int64?, checkingOutboxes: Bool) async -> [(part: Int, held: Bool, overdue: Int64)] {
        await withTaskGroup(of: (part: Int, held: Bool, overdue: Int64).self) { group in
            for part in parts {
                group.addTask {
                    do {
                        let lease = try await redis.fcall(
                            SessionFunctions.functionPrefix + "lease", keys: [RedisArgument(keys.sweepLease(part: part))],
                            arguments: [RedisArgument(instance), RedisArgument(Self.leaseLifetime.milliseconds)], options: .idempotent
                        )
                        guard lease == .integer(1) else { return (part, false, 0) }
                        return (part, true, try await sweep(part: part, nowSeconds: now ?? 0, checkingOutboxes: checkingOutboxes))
                    } catch {
                        logger.warning(
                            "the expiry sweeper could not sweep a part of the deadline index; trying again",
                            metadata: ["part": "\(part)", "error": "\(error)"]
                        )
                        return (part, false, 0)
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
    }

    /// The buckets of `part`.
    static func buckets(of part: Int) -> Range<Int> {
        let size = SessionKeys.bucketCount / parts
        return part * size..<(part + 1) * size
    }

    /// Sweeps one part; returns how overdue (ms) the most overdue session it ended was. On one
    /// server a call sweeps the whole part. On a cluster each bucket is its own slot: a plain
    /// `ZRANGEBYSCORE … LIMIT 0 1` (a fraction of a function call's cost) asks which buckets have
    /// anything due by `nowSeconds`, and only those are swept.
    private func sweep(part: Int, nowSeconds: Int64, checkingOutboxes: Bool) async throws -> Int64 {
        let buckets = Self.buckets(of: part)
        guard keys.outboxPerBucket else { return try await sweep(buckets: Array(buckets)) }
        return try await withThrowingTaskGroup(of: Int64.self) { group in
            for bucket in buckets {
                group.addTask {
                    if checkingOutboxes,
                        (try await redis.send(["XLEN", RedisArgument(keys.outbox(bucket: bucket))], options: .idempotent).integer ?? 0) > 0
                    {
                        events.relayNeeded(bucket: bucket)
                    }
                    let due = try await redis.send(
                        ["ZRANGEBYSCORE", RedisArgument(keys.deadlines(bucket: bucket)), "-inf", RedisArgument(nowSeconds), "LIMIT", "0", "1"],
                        options: .idempotent
                    )
                    guard nowSeconds == 0 || !(due.array ?? []).isEmpty else { return 0 }
                    return try await sweep(buckets: [bucket])
                }
            }
            return try await group.reduce(0, max)
        }
    }

    private func sweep(buckets: [Int]) async throws -> Int64 {
        var overdue: Int64 = 0
        let outbox = keys.outbox(bucket: buckets[0])
        while true {
            let reply = try await redis.fcall(
                SessionFunctions.functionPrefix + "sweep",
                keys: buckets.map { RedisArgument(keys.deadlines(bucket: $0)) } + [RedisArgument(outbox)],
                arguments: [RedisArgument(events.retention.milliseconds), RedisArgument(Self.batch)]
                    + buckets.map { RedisArgument(keys.sessionPrefix(bucket: $0)) },
                options: SessionCall.options
            )
            guard let parts = reply.array, parts.count == 4, let ended = parts[0].integer, let late = parts[1].integer,
                let more = parts[2].integer, let waiting = parts[3].integer
            else {
                throw RedisClientError(code: .protocolError, message: "sweep answered \(reply)")
            }
            overdue = max(overdue, late)
            if ended > 0 {
                batches.increment()
                events.recordedExpiries(Int(ended))
            }
            if keys.outboxPerBucket, waiting > 0 { events.relayNeeded(bucket: buckets[0]) }
            if more == 0 { return overdue }
        }
    }

    // MARK: - Relay (Redis Cluster)

    /// Relays the outboxes of buckets that recorded events: at once when this instance made the
    /// change, and after each sweep of a bucket whose outbox holds entries (which catches what an
    /// instance that died before relaying left behind).
    private func relayLoop() async {
        var buckets = Set<Int>()
        while !Task.isCancelled {
            var failed = false
            for bucket in buckets.sorted() {
                do {
                    try await relay(bucket: bucket)
                } catch {
                    logger.warning("could not relay a bucket's events into the event log; trying again", metadata: ["bucket": "\(bucket)", "error": "\(error)"])
                    events.relayNeeded(bucket: bucket)
                    failed = true
                }
            }
            if failed { try? await Task.sleep(for: .milliseconds(250)) }
            buckets = await events.relayWork(within: .seconds(1))
        }
    }

    /// Moves a bucket's outbox into the log, in order, then removes what was moved; repeated after
    /// a failure, an event may be appended twice, always with the same id.
    private func relay(bucket: Int) async throws {
        let outbox = RedisArgument(keys.outbox(bucket: bucket))
        while true {
            let reply = try await redis.send(["XRANGE", outbox, "-", "+", "COUNT", RedisArgument(Self.relayBatch)], options: .idempotent)
            guard let entries = reply.array, !entries.isEmpty else { return }
            var arguments = [RedisArgument(events.retention.milliseconds), RedisArgument("b\(bucket)")]
            var ids: [RedisArgument] = []
            for entry in entries {
                guard let parts = entry.array, parts.count == 2, let id = parts[0].bytes, let fields = parts[1].array else {
                    throw RedisClientError(code: .protocolError, message: "an outbox entry sessiond did not write")
                }
                var values: [String: [UInt8]] = [:]
                for index in stride(from: 0, to: fields.count - 1, by: 2) {
                    if let name = fields[index].string, let value = fields[index + 1].bytes { values[name] = value }
                }
                ids.append(RedisArgument(bytes: id))
                arguments.append(RedisArgument(bytes: id))
                for name in ["t", "s", "u", "r", "a"] { arguments.append(RedisArgument(bytes: values[name] ?? [])) }
            }
            _ = try await redis.fcall(
                SessionFunctions.functionPrefix + "log_append", keys: [RedisArgument(keys.eventLog)], arguments: arguments,
                options: SessionCall.options
            )
            _ = try await redis.send(["XDEL", outbox] + ids, options: SessionCall.options)
            if entries.count < Self.relayBatch { return }
        }
    }
}
