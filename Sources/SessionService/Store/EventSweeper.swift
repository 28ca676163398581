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
/// lifetime when its holder dies (at once when it stops: it gives its leases up).
///
/// A pass runs every ``interval`` and costs a few calls however many buckets there are: one for
/// all the leases (they share a slot), one `due` probe per Redis server (on a cluster, each
/// primary about its own buckets), and sweep calls only where a deadline has passed. With
/// deadlines indexed in whole seconds, a session's `session.expired` is recorded about 1–1.5 s
/// after its deadline, and within about 3.5 s when the instance sweeping it has just died.
struct EventSweeper: Service {
    static let parts = 16
    static let interval = Duration.milliseconds(500)
    static let leaseLifetime = Duration.seconds(2)
    /// The most sessions one sweep call ends (it goes on at once while more are overdue).
    static let batch = 500
    /// The most outbox entries one relay call moves.
    static let relayBatch = 200
    /// On a cluster, every this many passes the outboxes of the parts held are checked for events
    /// an instance that died left unrelayed (the instance that records an event relays it at once);
    /// and the part-0 holder trims the log by age as often (appends trim it too; an idle log is not).
    static let upkeepPasses = 10

    let events: SessionEvents
    let layout: ActiveLayout
    /// This instance's name in the leases (the fleet's announcement name: unique per process).
    let instance: String
    let logger: Logger
    private let batches: Counter
    private let leaseChanges: Counter
    private let overdueGauge: Gauge
    /// Every bucket's hash slot (for ``RedisClient/sendPerPrimary(slots:_:)``).
    private let slots: [Int]

    init(events: SessionEvents, layout: ActiveLayout, instance: String, logger: Logger, metricsFactory: any MetricsFactory) {
        self.events = events
        self.layout = layout
        self.instance = instance
        self.logger = logger
        batches = Counter(label: "sessiond_sweeper_batches_total", factory: metricsFactory)
        leaseChanges = Counter(label: "sessiond_sweeper_lease_changes_total", factory: metricsFactory)
        overdueGauge = Gauge(label: "sessiond_expiry_overdue_seconds", factory: metricsFactory)
        slots = (0..<SessionKeys.bucketCount).map { HashSlot.of(events.keys.deadlines(bucket: $0).utf8) }
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
                    held = await pass(holding: held, upkeep: passes % Self.upkeepPasses == 0)
                    passes += 1
                }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
            }
            // A graceful stop hands the parts over at once; a cancelled (or killed) instance's
            // leases lapse after their lifetime.
            if !held.isEmpty, !Task.isCancelled { _ = try? await leases(lifetime: .zero) }
            group.cancelAll()
        }
    }

    /// One pass: renews or takes the leases, asks which held buckets have a deadline that has
    /// passed (and, on upkeep passes, which outboxes hold events), sweeps those, and (holding part
    /// 0, on upkeep passes) trims the log by age.
    private func pass(holding before: Set<Int>, upkeep: Bool) async -> Set<Int> {
        let held: Set<Int>
        do {
            held = try await leases(lifetime: Self.leaseLifetime)
        } catch {
            logger.warning("the expiry sweeper could not renew its leases; trying again", metadata: ["error": "\(error)"])
            return []
        }
        if held != before {
            leaseChanges.increment(by: held.symmetricDifference(before).count)
            logger.info("the expiry sweeper's leases changed", metadata: ["parts_held": "\(held.sorted())"])
        }
        guard !held.isEmpty else { return held }
        let buckets = held.sorted().flatMap { Self.buckets(of: $0) }
        var overdue: Int64 = 0
        do {
            let (due, waiting) = try await probe(buckets, outboxes: upkeep && keys.outboxPerBucket)
            for bucket in waiting { events.relayNeeded(bucket: bucket) }
            overdue = try await sweep(due)
        } catch {
            logger.warning("the expiry sweeper could not sweep the deadline index; trying again", metadata: ["error": "\(error)"])
        }
        overdueGauge.record(Double(overdue) / 1000)
        if upkeep, held.contains(0) { await trimLog() }
        return held
    }

    /// Takes or renews (a `lifetime` of zero: gives up) every part's lease: the parts held after.
    private func leases(lifetime: Duration) async throws -> Set<Int> {
        let reply = try await redis.fcall(
            SessionFunctions.functionPrefix + "lease", keys: (0..<Self.parts).map { RedisArgument(keys.sweepLease(part: $0)) },
            arguments: [RedisArgument(instance), RedisArgument(lifetime.milliseconds)], options: .idempotent
        )
        guard let flags = reply.array, flags.count == Self.parts else {
            throw RedisClientError(code: .protocolError, message: "lease answered \(reply)")
        }
        return Set(flags.indices.filter { flags[$0] == .integer(1) })
    }

    /// The buckets of `part`.
    static func buckets(of part: Int) -> Range<Int> {
        let size = SessionKeys.bucketCount / parts
        return part * size..<(part + 1) * size
    }

    /// Which of `buckets` have a deadline that has passed, and (with `outboxes`) which hold events
    /// in their outbox: one `due` call per Redis server, each judging by its own clock. A bucket
    /// whose slot moved since the client's map was made is answered as due (the sweep call finds
    /// where it lives); a server that did not answer (one failing over) is asked again next pass.
    private func probe(_ buckets: [Int], outboxes: Bool) async throws -> (due: [Int], waiting: [Int]) {
        let answers = try await redis.sendPerPrimary(slots: buckets.map { slots[$0] }) { positions in
            var command: [RedisArgument] = ["FCALL", RedisArgument(SessionFunctions.functionPrefix + "due"), "0", RedisArgument(positions.count)]
            command += positions.map { RedisArgument(keys.deadlines(bucket: buckets[$0])) }
            if outboxes { command += positions.map { RedisArgument(keys.outbox(bucket: buckets[$0])) } }
            return command
        }
        var due: [Int] = []
        var waiting: [Int] = []
        for answer in answers {
            switch answer.reply {
            case .success(let reply):
                guard let lists = reply.array, lists.count == 2 else {
                    throw RedisClientError(code: .protocolError, message: "due answered \(reply)")
                }
                due += (lists[0].array ?? []).compactMap { $0.integer.map { buckets[answer.positions[Int($0) - 1]] } }
                waiting += (lists[1].array ?? []).compactMap { $0.integer.map { buckets[answer.positions[Int($0) - 1]] } }
            case .failure(let error):
                logger.debug("a Redis server did not answer which buckets are due", metadata: ["error": "\(error)"])
            }
        }
        return (due, waiting)
    }

    /// Sweeps `buckets`: returns how overdue (ms) the most overdue session it ended was. On one
    /// server one call sweeps them all; on a cluster each bucket is its own slot and call, at once.
    private func sweep(_ buckets: [Int]) async throws -> Int64 {
        guard !buckets.isEmpty else { return 0 }
        guard keys.outboxPerBucket else { return try await sweep(buckets: buckets) }
        return try await withThrowingTaskGroup(of: Int64.self) { group in
            for bucket in buckets {
                group.addTask { try await sweep(buckets: [bucket]) }
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

    /// Trims the event log to the retention by Redis' clock.
    private func trimLog() async {
        do {
            guard let now = try await redis.send(["TIME"], options: .idempotent).array?.first?.string.flatMap({ Int64($0) }) else { return }
            _ = try await redis.send(
                ["XTRIM", RedisArgument(keys.eventLog), "MINID", "~", RedisArgument(now * 1000 - events.retention.milliseconds)],
                options: .idempotent
            )
        } catch {
            logger.warning("could not trim the event log", metadata: ["error": "\(error)"])
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
