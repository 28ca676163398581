import Testing

@testable import RedisClient

/// The Sentinel resolver's decisions as values: no processes, no sockets, no clock but the one the
/// tests pass in.
@Suite struct PrimaryStateMachineTests {
    typealias Machine = PrimaryStateMachine<Int>
    let old = RedisEndpoint(host: "127.0.0.1", port: 7000)
    let new = RedisEndpoint(host: "127.0.0.1", port: 7001)
    let now = ContinuousClock.now

    /// `primary()` with a lookup counter: returns the decision and how many lookups it started.
    func ask(_ machine: inout Machine, lookups: inout Int) -> Machine.Decision {
        machine.primary {
            lookups += 1
            return lookups
        }
    }

    @Test func callersWithoutACandidateShareOneLookup() {
        var machine = Machine()
        var lookups = 0
        guard case .wait(1) = ask(&machine, lookups: &lookups), case .wait(1) = ask(&machine, lookups: &lookups) else {
            Issue.record("both callers should wait for lookup 1")
            return
        }
        #expect(lookups == 1)
    }

    @Test func aLookupsAnswerIsUsedUntilItsServerIsInvalidated() {
        var machine = Machine()
        var lookups = 0
        _ = ask(&machine, lookups: &lookups)
        #expect(machine.lookupSucceeded(old, source: "sentinel a", now: now) == .use(old, source: "sentinel a"))
        guard case .use(old, "sentinel a") = ask(&machine, lookups: &lookups) else {
            Issue.record("the answer should be used without a new lookup")
            return
        }
        machine.invalidate(new)  // another server: changes nothing
        guard case .use(old, _) = ask(&machine, lookups: &lookups) else {
            Issue.record("invalidating another server must keep the candidate")
            return
        }
        machine.invalidate(old)
        guard case .wait(2) = ask(&machine, lookups: &lookups) else {
            Issue.record("invalidating the candidate starts a new lookup")
            return
        }
        #expect(lookups == 2)
    }

    @Test func anInvalidationDuringALookupNeverLeavesACallerWithoutAnAnswer() {
        // The crash this state machine replaced: a caller saw a candidate, then found it cleared.
        var machine = Machine()
        var lookups = 0
        _ = ask(&machine, lookups: &lookups)
        machine.invalidate(old)
        #expect(machine.lookupSucceeded(old, source: "s", now: now) == .use(old, source: "s"))
        machine.invalidate(old)
        // Every decision is whole: a caller now waits for a new lookup rather than finding nothing.
        guard case .wait(2) = ask(&machine, lookups: &lookups) else {
            Issue.record("expected a new lookup")
            return
        }
    }

    @Test func anAnnouncementDuringALookupWinsOverTheLookupsOlderAnswer() {
        var machine = Machine()
        var lookups = 0
        _ = ask(&machine, lookups: &lookups)
        machine.announced(new, leaving: old, source: "+switch-master", now: now)
        // The lookup was asked before the failover and names the old primary: the news wins.
        #expect(machine.lookupSucceeded(old, source: "sentinel a", now: now) == .use(new, source: "+switch-master"))
        guard case .use(new, _) = ask(&machine, lookups: &lookups) else {
            Issue.record("the announced primary should be the one in use")
            return
        }
    }

    @Test func aFencedPrimaryIsNotUsedUntilTheFenceExpires() {
        var machine = Machine()
        var lookups = 0
        machine.announced(new, leaving: old, source: "+failover-state-send-slaveof-noone", now: now)
        machine.invalidate(new)  // the promoted replica's connection broke
        _ = ask(&machine, lookups: &lookups)
        // A sentinel that missed the failover still names the old primary.
        #expect(machine.lookupSucceeded(old, source: "sentinel b", now: now) == .fenced(old))
        guard case .wait(2) = ask(&machine, lookups: &lookups) else {
            Issue.record("a fenced answer must not become the candidate")
            return
        }
        let later = now + Machine.fenceDuration + .milliseconds(1)
        #expect(machine.lookupSucceeded(old, source: "sentinel b", now: later) == .use(old, source: "sentinel b"))
        guard case .use(old, _) = ask(&machine, lookups: &lookups) else {
            Issue.record("once the fence expired the answer should be used")
            return
        }
    }

    @Test func aFailedLookupLetsTheNextCallerStartAnother() {
        var machine = Machine()
        var lookups = 0
        _ = ask(&machine, lookups: &lookups)
        machine.lookupFailed()
        guard case .wait(2) = ask(&machine, lookups: &lookups) else {
            Issue.record("expected a second lookup")
            return
        }
    }

    @Test func confirmationsReportOnlyAChangeOfPrimary() {
        var machine = Machine()
        let first = machine.confirmed(old)
        let again = machine.confirmed(old)
        let other = machine.confirmed(new)
        #expect(first && !again && other)
        #expect(machine.lastConfirmed == new)
    }
}
