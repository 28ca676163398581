import Foundation
import RedisClient
import Synchronization

/// Redis' clock as well as sessiond knows it without asking: this host's clock plus an offset
/// measured with `TIME`, kept as the range the offset must lie in. `TIME` answered at some moment
/// of its round trip, so a slow round trip (a loaded machine) widens the range rather than
/// shifting a guess; the range is re-measured every ``resampleInterval``, or after
/// ``wideResampleInterval`` when it came out wider than ``wideRange``.
///
/// Two uses, with different needs:
/// - ``now()`` (the range's middle) only decides when to ask Redis: `session_touch` and
///   `session_write` check the touch interval again with Redis' own clock, so an error here moves
///   a slide by that much.
/// - ``hasPassed(_:)`` decides whether a deadline has passed (a session read after its deadline
///   but before the sweeper ended it is gone). It answers from the range only when the whole range
///   is on one side of the deadline, and asks Redis otherwise, so a read at the deadline is judged
///   by Redis' clock however far off the estimate is.
final class RedisClock: Sendable {
    static let resampleInterval = Duration.seconds(60)
    static let wideRange: Int64 = 100
    static let wideResampleInterval = Duration.seconds(1)
    /// How far this host's clock may drift from Redis' between two samples, per second: NTP slews a
    /// clock by at most 0.5 ms a second; twice that.
    static let driftPerSecond: Int64 = 1

    private struct Sample {
        /// Redis' clock minus this host's, in milliseconds: at least `low`, at most `high`.
        var low: Int64
        var high: Int64
        var takenAt: ContinuousClock.Instant
        var resampling: Bool

        var due: Bool {
            ContinuousClock.now - takenAt >= (high - low > RedisClock.wideRange ? RedisClock.wideResampleInterval : RedisClock.resampleInterval)
        }

        /// Redis' clock now: the earliest and latest it can be.
        func range(at host: Int64) -> (earliest: Int64, latest: Int64) {
            let drift = (ContinuousClock.now - takenAt).components.seconds * RedisClock.driftPerSecond
            return (host + low - drift, host + high + drift)
        }
    }

    private let redis: RedisClient
    private let sample = Mutex<Sample?>(nil)

    init(redis: RedisClient) {
        self.redis = redis
    }

    /// Redis' clock now, in milliseconds since the Unix epoch: the middle of what it can be. The
    /// first call (and one call a minute after that) asks Redis; the others answer at once.
    func now() async throws -> Int64 {
        let (earliest, latest) = try await range()
        return earliest + (latest - earliest) / 2
    }

    /// Whether Redis' clock is at or past `deadline` (ms since the Unix epoch). Asks Redis when the
    /// known range of its clock straddles the deadline.
    func hasPassed(_ deadline: Int64) async throws -> Bool {
        let (earliest, latest) = try await range()
        if latest < deadline { return false }
        if earliest >= deadline { return true }
        return try await measure().time >= deadline
    }

    /// The earliest and latest Redis' clock can be now.
    func range() async throws -> (earliest: Int64, latest: Int64) {
        let cached: Sample? = sample.withLock { sample in
            guard let current = sample else { return nil }
            if !current.resampling, current.due {
                sample?.resampling = true
                return nil
            }
            return current
        }
        if let cached { return cached.range(at: Self.hostMilliseconds()) }
        do {
            let measured = try await measure()
            sample.withLock { $0 = measured.sample }
            return measured.sample.range(at: Self.hostMilliseconds())
        } catch {
            sample.withLock { $0?.resampling = false }
            throw error
        }
    }

    /// Asks Redis' clock (`TIME`, answered at some moment of the round trip): its answer, and the
    /// range of the offset that follows from when the round trip began and ended.
    private func measure() async throws -> (time: Int64, sample: Sample) {
        let before = Self.hostMilliseconds()
        let reply = try await redis.send(["TIME"], options: .idempotent)
        let after = Self.hostMilliseconds()
        guard let parts = reply.array, parts.count == 2, let seconds = parts[0].string.flatMap({ Int64($0) }),
            let microseconds = parts[1].string.flatMap({ Int64($0) })
        else {
            throw RedisClientError(code: .protocolError, message: "unexpected reply to TIME")
        }
        let time = seconds * 1000 + microseconds / 1000
        // Both clocks are read in whole milliseconds: each reading may be up to 1 ms behind.
        return (time, Sample(low: time - after - 1, high: time - before + 1, takenAt: .now, resampling: false))
    }

    private static func hostMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }
}
