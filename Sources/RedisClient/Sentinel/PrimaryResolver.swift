import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Knows which server to send commands to: the configured one, or in Sentinel mode the primary the
/// sentinels name, confirmed by `ROLE` in each connection's handshake.
///
/// - All sentinels are asked at once; once a majority has answered, the answer with the newest
///   configuration epoch wins (fewer answers are used if that is all there is).
/// - An answer is used until a connection to it fails, finds a replica, or answers `READONLY` and
///   the like (``invalidate(_:)``); then the sentinels are asked again.
/// - When no sentinel answers, the last primary a handshake confirmed is used.
final class PrimaryResolver: Sendable {
    /// A lookup in flight: every caller that needs the primary meanwhile waits for the same one.
    private typealias Lookup = EventLoopFuture<(RedisEndpoint, String)>

    private struct State {
        var primary = PrimaryStateMachine<Lookup>()
    }

    /// How long one sentinel may take to connect and answer a query: a sentinel that accepts
    /// connections but never answers must not hold up a lookup the others can answer.
    static let sentinelQueryTimeout = Duration.milliseconds(500)

    /// Called with the new primary when a sentinel announces `+switch-master`, so that connections
    /// to the old one are dropped at once (an old primary may accept writes for seconds after a
    /// failover; writes it takes then are lost).
    private let onSwitch = Mutex<(@Sendable (RedisEndpoint) -> Void)?>(nil)

    private let configuration: RedisConfiguration
    private let state = Mutex(State())
    /// Where the sentinel connections live: the client's own event loops.
    private let loops: [any EventLoop]
    /// Where lookups run (they outlive the caller that starts them).
    private let background: BackgroundWork
    private let logger: Logger
    private let metrics: RedisClientMetrics?

    init(configuration: RedisConfiguration, loops: [any EventLoop], background: BackgroundWork, logger: Logger, metrics: RedisClientMetrics? = nil) {
        self.configuration = configuration
        self.loops = loops
        self.background = background
        self.logger = logger
        self.metrics = metrics
    }

    var isSentinelMode: Bool { configuration.sentinel != nil }

    /// Listens for failover announcements on every sentinel until cancelled; `handler` learns each
    /// new primary. Returns at once without Sentinel.
    func watchSwitches(_ handler: @escaping @Sendable (RedisEndpoint) -> Void) async {
        guard let sentinel = configuration.sentinel else { return }
        onSwitch.withLock { $0 = handler }
        await withDiscardingTaskGroup { group in
            for (index, address) in sentinel.sentinels.enumerated() {
                group.addTask { await self.watch(address, sentinel: sentinel, on: self.loops[index % self.loops.count]) }
            }
        }
    }

    /// One sentinel's subscription, re-made a second after it breaks, until cancelled. A failure
    /// is logged once per outage (and again when the subscription is back) and counted.
    private func watch(_ address: RedisEndpoint, sentinel: SentinelConfiguration, on loop: any EventLoop) async {
        let target = sentinelConnectionConfiguration(sentinel, at: address)
        let masterName = sentinel.masterName
        var failing = false
        while !Task.isCancelled {
            do {
                let connection = try await RedisConnection.connect(to: target, on: loop, functionLibraries: []) { message in
                    guard let parts = message.array, parts.count == 3, parts[0].string == "message",
                        let channel = parts[1].string, let words = parts[2].string?.split(separator: " ")
                    else { return }
                    self.handleSentinelEvent(channel: channel, words: words, masterName: masterName, from: address)
                }
                _ = try await connection.send([
                    "SUBSCRIBE", "+switch-master", "+failover-state-send-slaveof-noone", "+promoted-slave",
                ])
                if failing {
                    failing = false
                    logger.info("watching the sentinel for failovers again", metadata: ["sentinel": "\(address)"])
                }
                await withTaskCancellationHandler {
                    try? await connection.closeFuture.get()
                } onCancel: {
                    connection.closeSoon()
                }
                if !Task.isCancelled { throw RedisClientError.connectionClosed("the sentinel closed the subscription") }
            } catch {
                guard !Task.isCancelled else { return }
                metrics?.recordSentinelWatchFailure()
                if !failing {
                    failing = true
                    logger.warning(
                        "cannot watch a sentinel for failovers; retrying every second (failovers are still followed through ROLE and READONLY)",
                        metadata: ["sentinel": "\(address)", "error": "\(error)"]
                    )
                }
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Follows a failover as the leading sentinel announces it:
    /// - `+failover-state-send-slaveof-noone` (`slave <name> <ip> <port> @ <master> <ip> <port>`): the
    ///   replica about to be promoted becomes the target and the old primary is fenced at once, so no
    ///   write reaches it while the replica takes over (connections wait, through ROLE, for the promotion);
    /// - `+promoted-slave` (same shape): the promoted replica is the target;
    /// - `+switch-master` (`<master> <old ip> <old port> <new ip> <new port>`): the new primary is the target.
    private func handleSentinelEvent(channel: String, words: [Substring], masterName: String, from sentinel: RedisEndpoint) {
        let target: RedisEndpoint
        var fenced: RedisEndpoint?
        switch channel {
        case "+failover-state-send-slaveof-noone", "+promoted-slave":
            guard words.count == 8, words[4] == "@", words[5] == masterName,
                let port = Int(words[3]), let oldPort = Int(words[7])
            else { return }
            target = RedisEndpoint(host: String(words[2]), port: port)
            fenced = RedisEndpoint(host: String(words[6]), port: oldPort)
        case "+switch-master":
            guard words.count == 5, words[0] == masterName, let port = Int(words[4]), let oldPort = Int(words[2]) else { return }
            target = RedisEndpoint(host: String(words[3]), port: port)
            fenced = RedisEndpoint(host: String(words[1]), port: oldPort)
        default:
            return
        }
        state.withLock { state in
            state.primary.announced(target, leaving: fenced, source: "\(channel) from sentinel \(sentinel)", now: .now)
        }
        logger.notice("following a failover", metadata: ["event": "\(channel)", "target": "\(target)", "sentinel": "\(sentinel)"])
        onSwitch.withLock { $0 }?(target)
    }

    /// How to talk to the sentinel at `address`: its own credentials, database 0, no Sentinel mode,
    /// and at most ``sentinelQueryTimeout`` for the connect and for each reply.
    private func sentinelConnectionConfiguration(_ sentinel: SentinelConfiguration, at address: RedisEndpoint) -> RedisConfiguration {
        var sentinelConfiguration = configuration.pointing(to: address)
        sentinelConfiguration.sentinel = nil
        sentinelConfiguration.username = sentinel.username
        sentinelConfiguration.password = sentinel.password
        sentinelConfiguration.database = 0
        sentinelConfiguration.connectTimeout = min(configuration.connectTimeout, Self.sentinelQueryTimeout)
        sentinelConfiguration.commandTimeout = min(configuration.commandTimeout, Self.sentinelQueryTimeout)
        return sentinelConfiguration
    }

    /// Where to connect now, and how that address was found.
    func primary() async throws -> (RedisEndpoint, String) {
        guard let sentinel = configuration.sentinel else {
            return (RedisEndpoint(host: configuration.host, port: configuration.port), "configured")
        }
        let decision = state.withLock { state in
            state.primary.primary {
                let answer = loops[0].makePromise(of: (RedisEndpoint, String).self)
                let started = background.start {
                    do {
                        answer.succeed(try await self.lookUp(sentinel))
                    } catch {
                        answer.fail(error)
                    }
                }
                if !started { answer.fail(RedisClientError.shutDown) }
                return answer.futureResult
            }
        }
        switch decision {
        case .use(let endpoint, let source): return (endpoint, source)
        case .wait(let lookup): return try await lookup.get()
        }
    }

    /// One lookup: asks the sentinels and records the answer. Its waiters get the answer, or the
    /// error that a failover away from the named primary is under way.
    private func lookUp(_ sentinel: SentinelConfiguration) async throws -> (RedisEndpoint, String) {
        let answer: (RedisEndpoint, String)
        do {
            answer = try await askSentinels(sentinel)
        } catch {
            state.withLock { $0.primary.lookupFailed() }
            throw error
        }
        let outcome = state.withLock { $0.primary.lookupSucceeded(answer.0, source: answer.1, now: .now) }
        switch outcome {
        case .use(let endpoint, let source): return (endpoint, source)
        case .fenced(let endpoint): throw RedisClientError.connectionFailed("a failover away from \(endpoint) is under way")
        }
    }

    /// A handshake found `endpoint` to be the primary.
    func confirmed(_ endpoint: RedisEndpoint) {
        let changed = state.withLock { $0.primary.confirmed(endpoint) }
        if changed {
            metrics?.recordPrimary(endpoint)
            if isSentinelMode { logger.notice("using Redis primary", metadata: ["primary": "\(endpoint)"]) }
        }
    }

    /// `endpoint` is not (or no longer) a usable primary: ask the sentinels again next time.
    func invalidate(_ endpoint: RedisEndpoint) {
        guard isSentinelMode else { return }
        state.withLock { $0.primary.invalidate(endpoint) }
    }

    private func askSentinels(_ sentinel: SentinelConfiguration) async throws -> (RedisEndpoint, String) {
        // Ask every sentinel at once. A sentinel that missed a failover still names the old primary
        // (which, restarted, even answers ROLE as a master until Sentinel demotes it), so wait for a
        // majority of them and believe the one with the newest configuration epoch. The others are
        // cancelled then, and a connect or a query cancelled ends at once: a silent sentinel costs
        // a lookup nothing once a majority has answered, and at most sentinelQueryTimeout before.
        let majority = sentinel.sentinels.count / 2 + 1
        let (answer, failures) = await withTaskGroup(of: Result<(RedisEndpoint, Int64, RedisEndpoint), SentinelFailure>.self) {
            group -> ((RedisEndpoint, RedisEndpoint)?, [String]) in
            for address in sentinel.sentinels {
                group.addTask {
                    let reply: RESPValue
                    do {
                        reply = try await RedisConnection.query(
                            ["SENTINEL", "MASTER", RedisArgument(sentinel.masterName)],
                            at: self.sentinelConnectionConfiguration(sentinel, at: address), on: self.loops[0], within: Self.sentinelQueryTimeout
                        )
                    } catch {
                        return .failure(SentinelFailure(address, error))
                    }
                    guard let fields = reply.array else { return .failure(SentinelFailure(address, "an unexpected reply")) }
                    var state: [String: String] = [:]
                    for index in stride(from: 0, to: fields.count - 1, by: 2) {
                        if let key = fields[index].string, let value = fields[index + 1].string { state[key] = value }
                    }
                    guard let host = state["ip"], let port = state["port"].flatMap({ Int($0) }),
                        let epoch = state["config-epoch"].flatMap({ Int64($0) })
                    else { return .failure(SentinelFailure(address, "no address or epoch for the master")) }
                    return .success((RedisEndpoint(host: host, port: port), epoch, address))
                }
            }
            var best: (RedisEndpoint, Int64, RedisEndpoint)?
            var answers = 0
            var failures: [String] = []
            for await result in group {
                switch result {
                case .failure(let failure):
                    failures.append(failure.description)
                case .success(let answer):
                    answers += 1
                    if best == nil || answer.1 > best!.1 { best = answer }
                }
                if answers >= majority {
                    group.cancelAll()
                    break
                }
            }
            return (best.map { ($0.0, $0.2) }, failures)
        }
        if let (endpoint, sentinelAddress) = answer {
            return (endpoint, "sentinel \(sentinelAddress)")
        }
        if let last = state.withLock({ $0.primary.lastConfirmed }) {
            logger.warning("no sentinel answered; keeping the last confirmed primary", metadata: ["primary": "\(last)"])
            return (last, "last confirmed primary (no sentinel answered)")
        }
        throw RedisClientError.connectionFailed(
            "no sentinel named a primary for '\(sentinel.masterName)' (\(failures.joined(separator: "; ")))"
        )
    }
}

/// Why one sentinel gave no primary, for the error that reports that none did. Never holds a
/// password: RedisClientError messages leave credentials out.
struct SentinelFailure: Error, CustomStringConvertible {
    let description: String

    init(_ sentinel: RedisEndpoint, _ error: any Error) {
        let reason = (error as? RedisClientError)?.message ?? "\(error)"
        description = "\(sentinel): \(reason)"
    }

    init(_ sentinel: RedisEndpoint, _ reason: String) {
        description = "\(sentinel): \(reason)"
    }
}
