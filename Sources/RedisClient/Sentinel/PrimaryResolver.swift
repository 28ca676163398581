import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Knows which server to send commands to: the configured one, or in Sentinel mode the primary the
/// sentinels name, confirmed by `ROLE` in each connection's handshake.
///
/// - All sentinels are asked at once; the first valid answer wins.
/// - An answer is used until a connection to it fails, finds a replica, or answers `READONLY` and
///   the like (``invalidate(_:)``); then the sentinels are asked again.
/// - When no sentinel answers, the last primary a handshake confirmed is used.
final class PrimaryResolver: Sendable {
    private struct State {
        var candidate: RedisEndpoint?
        var candidateSource = ""
        var lastConfirmed: RedisEndpoint?
        var inFlight: Task<(RedisEndpoint, String), any Error>?
    }

    private let configuration: RedisConfiguration
    private let state = Mutex(State())
    private let logger: Logger

    init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    var isSentinelMode: Bool { configuration.sentinel != nil }

    /// Where to connect now, and how that address was found.
    func primary() async throws -> (RedisEndpoint, String) {
        guard let sentinel = configuration.sentinel else {
            return (RedisEndpoint(host: configuration.host, port: configuration.port), "configured")
        }
        let task = state.withLock { state -> Task<(RedisEndpoint, String), any Error>? in
            if state.candidate != nil { return nil }
            if let inFlight = state.inFlight { return inFlight }
            let task = Task { try await self.askSentinels(sentinel) }
            state.inFlight = task
            return task
        }
        guard let task else {
            return state.withLock { ($0.candidate!, $0.candidateSource) }
        }
        do {
            let (endpoint, source) = try await task.value
            state.withLock { state in
                state.inFlight = nil
                state.candidate = endpoint
                state.candidateSource = source
            }
            return (endpoint, source)
        } catch {
            state.withLock { $0.inFlight = nil }
            throw error
        }
    }

    /// A handshake found `endpoint` to be the primary.
    func confirmed(_ endpoint: RedisEndpoint) {
        let changed = state.withLock { state -> Bool in
            defer { state.lastConfirmed = endpoint }
            return state.lastConfirmed != endpoint
        }
        if changed && isSentinelMode {
            logger.notice("using Redis primary", metadata: ["primary": "\(endpoint)"])
        }
    }

    /// `endpoint` is not (or no longer) a usable primary: ask the sentinels again next time.
    func invalidate(_ endpoint: RedisEndpoint) {
        guard isSentinelMode else { return }
        state.withLock { state in
            if state.candidate == endpoint { state.candidate = nil }
        }
    }

    private func askSentinels(_ sentinel: SentinelConfiguration) async throws -> (RedisEndpoint, String) {
        let sentinelConfiguration = {
            var sentinelConfiguration = configuration
            sentinelConfiguration.sentinel = nil
            sentinelConfiguration.username = sentinel.username
            sentinelConfiguration.password = sentinel.password
            sentinelConfiguration.database = 0
            return sentinelConfiguration
        }()
        let answer = await withTaskGroup(of: (RedisEndpoint, RedisEndpoint)?.self) { group -> (RedisEndpoint, RedisEndpoint)? in
            for address in sentinel.sentinels {
                group.addTask {
                    var perSentinel = sentinelConfiguration
                    perSentinel.host = address.host
                    perSentinel.port = address.port
                    guard let connection = try? await RedisConnection.connect(
                        to: perSentinel, on: MultiThreadedEventLoopGroup.singleton.next(), functionLibraries: [], confirmPrimary: false
                    ) else { return nil }
                    defer { Task { await connection.close() } }
                    guard let reply = try? await connection.send(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", RedisArgument(sentinel.masterName)]),
                        let parts = reply.array, parts.count == 2, let host = parts[0].string,
                        let port = parts[1].string.flatMap({ Int($0) })
                    else { return nil }
                    return (RedisEndpoint(host: host, port: port), address)
                }
            }
            for await answer in group {
                if let answer {
                    group.cancelAll()
                    return answer
                }
            }
            return nil
        }
        if let (endpoint, sentinelAddress) = answer {
            return (endpoint, "sentinel \(sentinelAddress)")
        }
        if let last = state.withLock({ $0.lastConfirmed }) {
            logger.warning("no sentinel answered; keeping the last confirmed primary", metadata: ["primary": "\(last)"])
            return (last, "last confirmed primary (no sentinel answered)")
        }
        throw RedisClientError.connectionFailed(
            "no sentinel (\(sentinel.sentinels.map(\.description).joined(separator: ", "))) named a primary for '\(sentinel.masterName)'"
        )
    }
}
