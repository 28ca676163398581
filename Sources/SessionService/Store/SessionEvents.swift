import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import RedisClient
import ServiceLifecycle
import Synchronization

/// Session lifecycle events: `session.created`, `session.rotated`, `session.revoked` (with why) and
/// `session.expired` (idle or absolute), which other services read by cursor from `/v1/events`.
///
/// How they are kept (storage layout 3, ``SessionLayout/swept``):
/// - **Recorded with the change.** The function that makes a change appends its event in the same
///   atomic call (``SessionFunctions``), to an outbox in the change's own hash slot: on a single
///   server (or Sentinel) that is the event log itself; on a Redis Cluster it is the bucket's
///   outbox, which ``EventSweeper`` relays, in order, into the log. No keyspace notifications.
/// - **Expiry from the deadline index.** ``EventSweeper`` ends sessions past their deadline and
///   records `session.expired`; a session's key outlives its deadline by ``EventSettings/backstop``,
///   so the sweeper, not Redis, ends it.
/// - **One log, one cursor.** The log is one Redis stream (`<prefix>{e}:log`); a cursor is an entry
///   id (`<ms>-<seq>`). Entries older than the retention are trimmed as events are added; a cursor
///   the trimming has passed is refused (`cursor_expired`) and the consumer starts again.
/// - **One reader per instance.** This instance tails the log (one `XRANGE` every
///   ``tailInterval`` on the ordinary pipelined connections: nothing blocks them) into memory, and
///   every consumer it serves reads from there; a consumer further behind reads Redis directly.
///
/// Delivery is at least once: the same event may come again (a relay repeated after a failure), always
/// with the same `id`.
final class SessionEvents: Sendable {
    /// How many of the newest events each instance holds in memory for its consumers.
    static let memoryCapacity = 10_000
    /// How often the log is read for new events.
    static let tailInterval = Duration.milliseconds(50)
    /// The most entries one tail read takes.
    static let tailBatch = 1000

    let redis: RedisClient
    let keys: SessionKeys
    let retention: Duration
    private let logger: Logger
    private let tail = Mutex(Tail())
    /// Whether the application is stopping (draining): waits end early.
    private let stopping: @Sendable () -> Bool

    private let recordedCounters: [EventType: Counter]
    private let servedCounter: Counter
    private let consumerGauge: Gauge
    private let consumerCount = Mutex(0)
    /// Buckets whose outbox has events to relay (Redis Cluster only), and the relay waiting for them.
    private let relayWork = Mutex(RelayWork())

    private struct RelayWork {
        var dirty = Set<Int>()
        var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var nextWaiter: UInt64 = 0
    }

    init(redis: RedisClient, keys: SessionKeys, retention: Duration, logger: Logger, metricsFactory: any MetricsFactory, stopping: @escaping @Sendable () -> Bool = { false }) {
        self.redis = redis
        self.keys = keys
        self.retention = retention
        self.logger = logger
        self.stopping = stopping
        var counters: [EventType: Counter] = [:]
        for type in EventType.allCases {
            counters[type] = Counter(label: "sessiond_events_recorded_total", dimensions: [("type", type.name)], factory: metricsFactory)
        }
        recordedCounters = counters
        servedCounter = Counter(label: "sessiond_events_served_total", factory: metricsFactory)
        consumerGauge = Gauge(label: "sessiond_events_consumers", factory: metricsFactory)
    }

    // MARK: - Recording

    /// A session call that records events has answered: counts the event it recorded, and on a
    /// cluster has its bucket's outbox relayed.
    func recorded(by call: SessionCall, outcome: SessionCall.Outcome) {
        let type: EventType? = switch (call, outcome) {
        case (.create, .done): .created
        case (.rotate, .done): .rotated
        case (.delete, .deleted), (_, .tokenReused(revoked: true, _)): .revoked
        default: nil
        }
        guard let type, let id = call.session else { return }
        recordedCounters[type]?.increment()
        if keys.outboxPerBucket { relayNeeded(bucket: SessionKeys.bucket(of: id)) }
    }

    /// The sweeper ended `count` sessions.
    func recordedExpiries(_ count: Int) {
        recordedCounters[.expired]?.increment(by: count)
    }

    func relayNeeded(bucket: Int) {
        let waiter = relayWork.withLock { work in
            work.dirty.insert(bucket)
            defer { work.waiter = nil }
            return work.waiter
        }
        waiter?.continuation.resume()
    }

    /// The buckets marked since the last call: at once when there are some, else as soon as one
    /// is marked, or empty after `limit`.
    func relayWork(within limit: Duration) async -> Set<Int> {
        let id = relayWork.withLock { $0.nextWaiter &+= 1; return $0.nextWaiter }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiting = relayWork.withLock { work -> Bool in
                guard work.dirty.isEmpty else { return false }
                work.waiter = (id, continuation)
                return true
            }
            guard waiting else { return continuation.resume() }
            MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(limit.nanoseconds)) { [self] in
                relayWork.withLock { work -> CheckedContinuation<Void, Never>? in
                    guard let waiter = work.waiter, waiter.id == id else { return nil }
                    work.waiter = nil
                    return waiter.continuation
                }?.resume()
            }
        }
        return relayWork.withLock { work in
            defer { work.dirty.removeAll(keepingCapacity: true) }
            return work.dirty
        }
    }

    // MARK: - Reading

    /// Events after `cursor` (from the oldest kept without one), at most `limit`, oldest first;
    /// with nothing new, waits up to `wait` for one.
    /// - Throws: ``SessionStoreError/cursorExpired`` when events after `cursor` have been trimmed.
    func read(after cursor: EventCursor?, limit: Int, wait: Duration) async throws(SessionStoreError) -> EventPage {
        let deadline = ContinuousClock.now + wait
        var after = cursor
        while true {
            let (page, generation) = try await readOnce(after: after, limit: limit)
            if !page.events.isEmpty || ContinuousClock.now >= deadline || Task.isCancelled || isStopping {
                servedCounter.increment(by: page.events.count)
                return page
            }
            after = page.next
            // At least once a second, so a stopping application ends its waits soon.
            await waitForNews(after: generation, until: min(deadline, .now + .seconds(1)))
        }
    }

    /// The consumers waiting or streaming now (`sessiond_events_consumers`).
    func consumerStarted() { consumerGauge.record(consumerCount.withLock { $0 += 1; return $0 }) }
    func consumerEnded() { consumerGauge.record(consumerCount.withLock { $0 -= 1; return $0 }) }

    /// The application is draining, or has stopped following the log: waits and streams end.
    var isStopping: Bool { stopping() || tail.withLock { $0.closed } }

    /// Ends every wait and stream (the application is stopping).
    func close() {
        let waiters = tail.withLock { tail in
            tail.closed = true
            defer { tail.waiters.removeAll() }
            return tail.waiters
        }
        for waiter in waiters.values { waiter.resume() }
    }

    /// One read: from memory when the cursor is within what this instance holds, else from Redis.
    /// Also returns the memory's generation as it was before the read, for ``waitForNews(after:until:)``.
    private func readOnce(after cursor: EventCursor?, limit: Int) async throws(SessionStoreError) -> (EventPage, UInt64) {
        let generation = tail.withLock { $0.generation }
        if let cursor, let page = tail.withLock({ $0.page(after: cursor, limit: limit) }) { return (page, generation) }
        let reply: RESPValue
        do {
            reply = try await redis.fcall(
                SessionFunctions.functionPrefix + "events_read", keys: [RedisArgument(keys.eventLog)],
                arguments: [RedisArgument(cursor?.description ?? ""), RedisArgument(limit)], options: .idempotent
            )
        } catch let error as RedisClientError {
            throw .unavailable(error)
        } catch {
            throw .corrupt("\(error)")
        }
        guard let parts = reply.array, let status = parts.first?.string else { throw .corrupt("events_read answered \(reply)") }
        if status == "expired" { throw .cursorExpired }
        guard parts.count == 3, let next = parts[1].string.flatMap(EventCursor.init), let entries = parts[2].array else {
            throw .corrupt("events_read answered \(reply)")
        }
        return (EventPage(events: try Self.events(entries), next: next), generation)
    }

    static func events(_ entries: [RESPValue]) throws(SessionStoreError) -> [LoggedEvent] {
        var events: [LoggedEvent] = []
        events.reserveCapacity(entries.count)
        for entry in entries {
            guard let event = LoggedEvent(entry: entry) else { throw .corrupt("an event log entry sessiond did not write: \(entry)") }
            events.append(event)
        }
        return events
    }

    /// Returns once the memory has moved past `generation`, at `deadline`, or when the task is
    /// cancelled.
    private func waitForNews(after generation: UInt64, until deadline: ContinuousClock.Instant) async {
        let id = tail.withLock { $0.nextWaiter &+= 1; return $0.nextWaiter }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = tail.withLock { tail -> Bool in
                    guard tail.generation == generation, !tail.closed else { return false }
                    tail.waiters[id] = continuation
                    return true
                }
                guard waiting else { return continuation.resume() }
                let delay = max(.zero, deadline - .now)
                MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(delay.nanoseconds)) { [self] in wake(id) }
            }
        } onCancel: {
            wake(id)
        }
    }

    private func wake(_ id: UInt64) {
        tail.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }

    // MARK: - Tailing

    /// Follows the log into memory until the task is cancelled or the application shuts down.
    ///
    /// Each read starts at the newest entry memory holds, inclusive: memory must hold only what the
    /// log holds, and after a failover in the async mode the new primary may lack the last entries
    /// the old one had (their changes were lost with them). When that entry is gone, memory is
    /// dropped and the tail starts again at the log's end; consumers read Redis meanwhile.
    func runTail() async {
        // The newest entry memory holds, or where the log ended when the tail started.
        var after: EventCursor?
        // Whether `after` is an entry of the log (an empty log's end is none).
        var isEntry = false
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            var full = false
            do {
                if let cursor = after {
                    let from = isEntry ? cursor.description : "(" + cursor.description
                    let reply = try await redis.send(
                        ["XRANGE", RedisArgument(keys.eventLog), RedisArgument(from), "+", "COUNT", RedisArgument(Self.tailBatch + (isEntry ? 1 : 0))],
                        options: .idempotent
                    )
                    var events = try Self.events(reply.array ?? [])
                    if isEntry {
                        guard events.first?.cursor == cursor else {
                            logger.warning("the event log no longer holds the newest event this instance read (a failover to a replica it had not reached, or trimmed by retention); following it again from its end")
                            forget()
                            after = nil
                            continue
                        }
                        events.removeFirst()
                    }
                    full = events.count == Self.tailBatch
                    if let last = events.last {
                        after = last.cursor
                        isEntry = true
                        append(events)
                    }
                } else {
                    let end = try await logEnd()
                    tail.withLock { $0.start = end.cursor }
                    after = end.cursor
                    isEntry = end.isEntry
                }
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                logger.warning("could not read the event log; trying again", metadata: ["error": "\(error)"])
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(500)) }
                continue
            }
            if !full { try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.tailInterval) } }
        }
    }

    /// The id of the log's newest entry, or when it has none its last id (`0-0` when it never had one).
    private func logEnd() async throws -> (cursor: EventCursor, isEntry: Bool) {
        let newest = try await redis.send(["XREVRANGE", RedisArgument(keys.eventLog), "+", "-", "COUNT", "1"], options: .idempotent)
        if let entry = newest.array?.first, let id = entry.array?.first?.string, let cursor = EventCursor(id) { return (cursor, true) }
        let reply = try await redis.fcall(
            SessionFunctions.functionPrefix + "events_read", keys: [RedisArgument(keys.eventLog)], arguments: ["", "1"], options: .idempotent
        )
        guard let parts = reply.array, parts.count == 3, let cursor = parts[1].string.flatMap(EventCursor.init) else {
            throw RedisClientError(code: .protocolError, message: "events_read answered \(reply)")
        }
        return (cursor, false)
    }

    /// The oldest moment (ms, this host's clock) whose events the retention still promises: memory
    /// lets older events go as the log's trimming does, so a cursor older than the retention is
    /// judged by Redis.
    private var keptSince: UInt64 {
        UInt64(max(0, Date().timeIntervalSince1970 * 1000 - Double(retention.milliseconds)))
    }

    /// Drops what memory holds: until the tail starts again, every consumer reads Redis.
    private func forget() {
        tail.withLock { tail in
            tail.start = nil
            tail.events.removeAll()
            tail.generation &+= 1
        }
    }

    private func append(_ events: [LoggedEvent]) {
        let since = keptSince
        let waiters = tail.withLock { tail in
            tail.append(events, keptSince: since)
            defer { tail.waiters.removeAll() }
            return tail.waiters
        }
        for waiter in waiters.values { waiter.resume() }
    }

    /// The newest events, in order, as this instance has read them.
    private struct Tail {
        /// The memory holds every event after this one (`nil` until the tail has started).
        var start: EventCursor?
        var events = CircularBuffer<LoggedEvent>(initialCapacity: 1024)
        /// Moves on with every append, so a waiter cannot miss one.
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var closed = false

        /// Adds the newest events, dropping the oldest beyond the capacity or the retention.
        mutating func append(_ new: [LoggedEvent], keptSince: UInt64) {
            for event in new { events.append(event) }
            while let first = events.first, events.count > SessionEvents.memoryCapacity || first.cursor.milliseconds < keptSince {
                start = events.removeFirst().cursor
            }
            generation &+= 1
        }

        /// The events after `cursor`, when memory holds them all; `nil` when the cursor is before
        /// what memory holds (Redis then tells whether events after it have been trimmed).
        func page(after cursor: EventCursor, limit: Int) -> EventPage? {
            guard let start, cursor >= start else { return nil }
            // The first event after the cursor, by binary search.
            var low = events.startIndex
            var count = events.count
            while count > 0 {
                let half = count / 2
                let middle = events.index(low, offsetBy: half)
                if events[middle].cursor <= cursor {
                    low = events.index(after: middle)
                    count -= half + 1
                } else {
                    count = half
                }
            }
            let end = events.index(low, offsetBy: min(limit, events.distance(from: low, to: events.endIndex)))
            let found = Array(events[low..<end])
            return EventPage(events: found, next: found.last?.cursor ?? cursor)
        }
    }
}

/// What `/v1/events` answers: events, and the cursor to read after next.
struct EventPage: Sendable {
    let events: [LoggedEvent]
    let next: EventCursor
}

/// A position in the event log: the id of a log entry (`<ms>-<seq>`), which is also the cursor's
/// text, opaque to consumers.
struct EventCursor: Sendable, Hashable, Comparable, CustomStringConvertible {
    let milliseconds: UInt64
    let sequence: UInt64

    init(milliseconds: UInt64, sequence: UInt64) {
        self.milliseconds = milliseconds
        self.sequence = sequence
    }

    /// Only `<digits>-<digits>`, each a 64-bit number: anything else is no cursor.
    init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.utf8.count <= 41, parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { (48...57).contains($0) } }),
            let milliseconds = UInt64(parts[0]), let sequence = UInt64(parts[1])
        else { return nil }
        self.init(milliseconds: milliseconds, sequence: sequence)
    }

    var description: String { "\(milliseconds)-\(sequence)" }

    static func < (lhs: EventCursor, rhs: EventCursor) -> Bool {
        (lhs.milliseconds, lhs.sequence) < (rhs.milliseconds, rhs.sequence)
    }
}

/// The types of events.
enum EventType: CaseIterable, Sendable {
    case created, rotated, revoked, expired

    /// The `type` consumers see.
    var name: String {
        switch self {
        case .created: "session.created"
        case .rotated: "session.rotated"
        case .revoked: "session.revoked"
        case .expired: "session.expired"
        }
    }

    /// The code the functions record (``SessionFunctions``' `record`).
    init?(code: [UInt8]) {
        switch code {
        case [UInt8(ascii: "c")]: self = .created
        case [UInt8(ascii: "r")]: self = .rotated
        case [UInt8(ascii: "v")]: self = .revoked
        case [UInt8(ascii: "e")]: self = .expired
        default: return nil
        }
    }
}

/// One event of the log, with its JSON made once (every consumer gets the same bytes).
struct LoggedEvent: Sendable {
    let cursor: EventCursor
    let type: EventType
    /// `{"id":…,"type":…,"time":…,"session":{"id":…,"user":…},"reason":…}`.
    let json: ByteBuffer

    /// From an `XRANGE` entry: `[id, [field, value, …]]` with the fields the functions write.
    init?(entry: RESPValue) {
        guard let parts = entry.array, parts.count == 2, let idText = parts[0].string, let cursor = EventCursor(idText),
            let fields = parts[1].array, fields.count % 2 == 0
        else { return nil }
        var type: EventType?
        var session: [UInt8]?
        var user: [UInt8] = []
        var reason: [UInt8] = []
        var at: Int64?
        var origin: String?
        for index in stride(from: 0, to: fields.count, by: 2) {
            guard let name = fields[index].bulkBytes, name.count == 1, let value = fields[index + 1].bytes else { return nil }
            switch name.first {
            case UInt8(ascii: "t"): type = EventType(code: value)
            case UInt8(ascii: "s"): session = value
            case UInt8(ascii: "u"): user = value
            case UInt8(ascii: "r"): reason = value
            case UInt8(ascii: "a"): at = Int64(String(decoding: value, as: UTF8.self))
            case UInt8(ascii: "o"): origin = String(decoding: value, as: UTF8.self)
            default: continue
            }
        }
        guard let type, let session, session.count == SessionID.byteCount, let at else { return nil }
        self.cursor = cursor
        self.type = type
        var writer = JSONWriter(capacity: 224 + user.count + reason.count)
        writer.raw(#"{"id":"#)
        // On one server the entry's own id; on a cluster the id it had in its bucket's outbox.
        writer.string(origin ?? idText)
        writer.raw(#","type":"#)
        writer.string(type.name)
        writer.raw(#","time":"#)
        writer.timestamp(milliseconds: at)
        writer.raw(#","session":{"id":"#)
        writer.string(Hex.encode(session))
        writer.raw(#","user":"#)
        if user.isEmpty { writer.raw("null") } else { writer.string(String(decoding: user, as: UTF8.self)) }
        writer.raw(#"},"reason":"#)
        if reason.isEmpty { writer.raw("null") } else { writer.string(String(decoding: reason, as: UTF8.self)) }
        writer.raw("}")
        json = writer.buffer
    }
}

/// Fixed settings of events.
enum EventSettings {
    /// How long a session's key outlives its deadline in layout 3 with events: the sweeper ends it
    /// within seconds; this only collects what no sweeper reached (every instance down that long).
    static let backstop = Duration.seconds(3600)
}

/// Follows the event log into memory (``SessionEvents/runTail()``) while the application runs.
struct EventTailService: Service {
    let events: SessionEvents

    func run() async throws {
        await events.runTail()
        events.close()
    }
}

extension Duration {
    /// Whole nanoseconds, for NIO's `TimeAmount`.
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
