import Foundation
import RedisTestSupport
import Synchronization

/// A steady stream of session writes through sessiond's HTTP API, for the failover tests, and the
/// checks of what became of every write afterwards.
///
/// `creators` writers each create sessions one after another; `patchers` writers each patch one
/// session of their own (`{"n": k}` for k = 1, 2, ...), so that afterwards the session's `version`
/// says how often a patch was applied: exactly 1 + the patches acknowledged, unless one was lost or
/// applied twice.
struct WriteLoad {
    struct Patcher: Sendable {
        let token: String
        /// Patches answered 200.
        var acknowledged = 0
        /// The `n` of the last patch answered 200.
        var lastAcknowledged = 0
        /// Requests of this patcher answered other than 2xx (or not at all), reads included.
        var refused = 0
        /// The longest any of its requests took.
        var slowest = Duration.zero
    }

    /// What the writers saw.
    struct Outcome: Sendable {
        var created: [String] = []
        var patchers: [Patcher] = []
        /// Every answer other than a 2xx, and every request that got no answer, as text.
        var refused: [String] = []
        /// When each acknowledged request was sent and answered.
        var acknowledgements: [(sent: ContinuousClock.Instant, answered: ContinuousClock.Instant)] = []

        /// How long after `instant` the first write sent after it was acknowledged.
        func firstAcknowledgement(sentAfter instant: ContinuousClock.Instant) -> Duration? {
            acknowledgements.filter { $0.sent >= instant }.map { $0.answered - instant }.min()
        }
    }

    /// What a check of every acknowledged write found.
    struct Verdict: Sendable, CustomStringConvertible {
        var acknowledged = 0
        /// Acknowledged creates whose session is gone, plus acknowledged patches missing.
        var lost = 0
        /// Patches applied more often than acknowledged.
        var doubled = 0
        /// Reads that did not answer 200 or 404.
        var unreadable: [String] = []

        var description: String {
            "\(acknowledged) acknowledged writes: \(lost) lost, \(doubled) applied twice"
                + (unreadable.isEmpty ? "" : ", \(unreadable.count) unreadable, the first: \(unreadable[0])")
        }
    }

    let service: TestService
    let creators: Int
    let patchers: Int
    /// Patchers read their session back after each acknowledged patch and count a read that does
    /// not show it as refused.
    var readBack = false
    /// Patchers work on these sessions (tokens) instead of creating their own.
    var sessions: [String] = []
    /// Writes acknowledged so far, for a test to wait on while the load runs.
    let progress = Tally()

    /// Waits until `more` writes beyond those acknowledged now are acknowledged: a stretch of writing
    /// measured in writes, not in seconds, so that a slow machine writes as much as a fast one.
    /// `false` when that takes longer than the (generous) `timeout`.
    func acknowledge(_ more: Int, within timeout: Duration = .seconds(60)) async -> Bool {
        let target = progress.count + more
        return await eventually(timeout: timeout, interval: .milliseconds(20)) { progress.count >= target }
    }

    /// Creates the patchers' sessions (before any failure is injected), then writes until `running`
    /// is cleared.
    func run(while running: Flag) async throws -> Outcome {
        var sessions = self.sessions
        while sessions.count < patchers {
            sessions.append(try await service.create(#"{"data":{"n":0}}"#).token)
        }
        return await withTaskGroup(of: Outcome.self) { group in
            for _ in 0..<creators {
                group.addTask { await self.create(while: running) }
            }
            for token in sessions {
                group.addTask { await self.patch(token, while: running) }
            }
            var total = Outcome()
            for await outcome in group {
                total.created += outcome.created
                total.patchers += outcome.patchers
                total.refused += outcome.refused
                total.acknowledgements += outcome.acknowledgements
            }
            return total
        }
    }

    private func create(while running: Flag) async -> Outcome {
        var outcome = Outcome()
        while running.isSet {
            let sent = ContinuousClock.now
            do {
                let response = try await service.request("POST", "/v1/sessions", json: #"{"data":{"step":1}}"#)
                if response.status == 201, let token = response.jsonObject?["token"] as? String {
                    outcome.created.append(token)
                    outcome.acknowledgements.append((sent, .now))
                    progress.add()
                } else {
                    outcome.refused.append("create: \(response.status) \(response.text)")
                }
            } catch {
                outcome.refused.append("create: no answer: \(error)")
            }
        }
        return outcome
    }

    private func patch(_ token: String, while running: Flag) async -> Outcome {
        var outcome = Outcome()
        var patcher = Patcher(token: token)
        var step = 0
        func refuse(_ reason: String) {
            outcome.refused.append(reason)
            patcher.refused += 1
        }
        while running.isSet {
            step += 1
            let sent = ContinuousClock.now
            do {
                let response = try await service.patch(token, "{\"n\":\(step)}")
                patcher.slowest = max(patcher.slowest, .now - sent)
                if response.status == 200 {
                    patcher.acknowledged += 1
                    patcher.lastAcknowledged = step
                    outcome.acknowledgements.append((sent, .now))
                    progress.add()
                } else {
                    refuse("patch: \(response.status) \(response.text)")
                    continue
                }
                guard readBack else { continue }
                let readAt = ContinuousClock.now
                let read = try await service.get(token, query: "?touch=false")
                patcher.slowest = max(patcher.slowest, .now - readAt)
                let seen = (read.jsonObject?["data"] as? [String: Any])?["n"] as? Int
                if read.status != 200 || seen != step { refuse("read: \(read.status) n=\(seen.map(String.init) ?? "none") after patch \(step)") }
            } catch {
                refuse("patch: no answer: \(error)")
            }
        }
        outcome.patchers = [patcher]
        return outcome
    }

    /// Reads back every acknowledged write (without sliding anything).
    static func verify(_ outcome: Outcome, through service: TestService) async throws -> Verdict {
        var verdict = Verdict()
        verdict.acknowledged = outcome.created.count + outcome.patchers.reduce(0) { $0 + $1.acknowledged }
        for token in outcome.created {
            let response = try await service.get(token, query: "?touch=false")
            switch response.status {
            case 200: break
            case 404: verdict.lost += 1
            default: verdict.unreadable.append("\(response.status) \(response.text)")
            }
        }
        for patcher in outcome.patchers {
            let response = try await service.get(patcher.token, query: "?touch=false")
            guard response.status == 200, let session = response.jsonObject,
                let version = session["version"] as? Int, let data = session["data"] as? [String: Any],
                let last = data["n"] as? Int
            else {
                verdict.unreadable.append("\(response.status) \(response.text)")
                continue
            }
            // A refused patch may or may not have been applied (once): only what no refusal can
            // explain is counted. Patches are sequential, so the last one applied is the value seen.
            let applied = version - 1
            if applied < patcher.acknowledged { verdict.lost += patcher.acknowledged - applied }
            if applied > patcher.acknowledged + patcher.refused { verdict.doubled += applied - patcher.acknowledged - patcher.refused }
            if last < patcher.lastAcknowledged || (patcher.refused == 0 && last != patcher.lastAcknowledged) { verdict.lost += 1 }
        }
        return verdict
    }
}

/// A stop signal shared by concurrent writer tasks.
final class Flag: Sendable {
    private let value = Atomic(true)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func clear() { value.store(false, ordering: .relaxed) }
}

/// A count shared by concurrent writer tasks.
final class Tally: Sendable {
    private let value = Atomic(0)
    var count: Int { value.load(ordering: .relaxed) }
    func add() { value.add(1, ordering: .relaxed) }
}
