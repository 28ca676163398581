import Foundation
import RedisClient
import Synchronization

/// An estimate of Redis' clock, so that a plain read can tell whether the touch interval has passed
/// without asking Redis: this host's clock plus an offset measured with `TIME` and re-measured
/// every ``resampleInterval``.
///
/// The estimate only decides when to ask; `session_touch` checks the interval again with Redis'
/// own clock. So an error of the estimate (about half a round trip) moves a slide by that much,
/// and a host clock that is off by minutes or hours changes nothing.
final class RedisClock: Sendable {
    static let resampleInterval = Duration.seconds(60)

    private struct Sample {
        /// Redis' clock minus this host's, in milliseconds.
        var offset: Int64
        var takenAt: ContinuousClock.Instant
        var resampling: Bool
    }

    private let redis: RedisClient
    private let sample = Mutex<Sample?>(nil)

    init(redis: RedisClient) {
        self.redis = redis
    }

    /// Redis' clock now, in milliseconds since the Unix epoch, as well as it is known. The first
    /// call (and one call a minute after that) asks Redis; the others answer at once.
    func now() async throws -> Int64 {
        let cached: Int64? = sample.withLock { sample in
            guard let current = sample else { return nil }
            if !current.resampling, ContinuousClock.now - current.takenAt >= Self.resampleInterval {
                sample?.resampling = true
                return nil
            }
            return current.offset
        }
        if let cached { return Self.hostMilliseconds() + cached }
        do {
            let offset = try await measureOffset()
            sample.withLock { $0 = Sample(offset: offset, takenAt: .now, resampling: false) }
            return Self.hostMilliseconds() + offset
        } catch {
            sample.withLock { $0?.resampling = false }
            throw error
        }
    }

    /// `TIME` answers with Redis' clock at some moment of the round trip: take its middle.
    private func measureOffset() async throws -> Int64 {
        let before = Self.hostMilliseconds()
        let reply = try await redis.send(["TIME"], options: .idempotent)
        let after = Self.hostMilliseconds()
        guard let parts = reply.array, parts.count == 2, let seconds = parts[0].string.flatMap({ Int64($0) }),
            let microseconds = parts[1].string.flatMap({ Int64($0) })
        else {
            throw RedisClientError(code: .protocolError, message: "unexpected reply to TIME")
        }
        return seconds * 1000 + microseconds / 1000 - (before + after) / 2
    }

    private static func hostMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }
}
