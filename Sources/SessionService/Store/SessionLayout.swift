/// How sessions are laid out in Redis. Instances of different versions share one Redis during a
/// rolling deploy, so the layout is versioned and the fleet agrees on which one is written
/// (``FleetLayout``); every instance reads both.
enum SessionLayout: Int, Sendable, Comparable, CaseIterable {
    /// The landed layout (before layouts had numbers): each session in its own hash slot, tagged
    /// by its id (`<prefix>s:{<id>}`, tombstone `<prefix>t:{<id>}`), and no deadline index.
    case perSessionSlot = 1
    /// Sessions in 1,024 buckets tagged by a bucket derived from the id (`<prefix>{b<n>}:s:<id>`),
    /// so that a session, its tombstone and its bucket's deadline index (and event stream) share a
    /// slot and one function call can change them together.
    case bucketed = 2
    /// Layout 2's keys, with lifecycle events (``SessionEvents``): a session's key outlives its
    /// deadline by a backstop (``EventSettings/backstop``) so that the expiry sweeper, not Redis,
    /// ends it and records `session.expired` with its user and the deadline that ended it, and
    /// every read checks the deadline itself. Older versions would serve such a session past its
    /// deadline, so the fleet moves to it only once every live instance supports it.
    case swept = 3

    /// The newest layout this build writes.
    static let newest = SessionLayout.swept
    /// The layouts this build reads and writes.
    static let supported = SessionLayout.perSessionSlot.rawValue...SessionLayout.newest.rawValue

    static func < (lhs: SessionLayout, rhs: SessionLayout) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Sessions tagged by bucket, with a deadline index (layouts 2 and 3 share their keys).
    var isBucketed: Bool { self != .perSessionSlot }
}

/// The fleet's agreement on the storage layout, after CockroachDB's cluster version: each instance
/// announces (with a short lifetime) the layouts it supports; the active layout is the newest one
/// every live instance supports, moves on by itself once the last instance that needed an older one
/// is gone, and never moves back. Instances from before announcements (`legacy`) cannot be seen, so
/// while they may run, only `sessiond --finalize-layout` moves the fleet on.
///
/// Pure decisions on the state read from Redis (``SessionFunctions``' fleet functions keep it): which
/// layout to write, when to move on, when to refuse.
struct FleetLayout: Sendable, Equatable {
    /// One live instance's announcement.
    struct Member: Sendable, Equatable {
        let instance: String
        let layouts: ClosedRange<Int>
        /// The version of its functions (``SessionFunctions/protocolVersion``).
        let functionProtocol: Int
    }

    /// The layout sessions are written in; `nil` before any instance decided one.
    var active: Int?
    /// Instances from before announcements may still run.
    var legacy: Bool
    /// The live announcements.
    var members: [Member]

    /// What an instance does after announcing itself.
    enum Decision: Sendable, Equatable {
        /// Nothing to change: write the active layout.
        case keep
        /// The first instance on this Redis decides: the newest layout every live instance supports,
        /// or layout 1 and the legacy mark when a version from before announcements has been here.
        case initialize(active: Int, legacy: Bool)
        /// Every live instance supports a newer layout: move on to it.
        case advance(from: Int, to: Int)
        /// This instance cannot write the active layout: it must not run.
        case refuse(String)
    }

    /// The decision for `me` (whose own announcement is among `members`). `legacyLibraryFound`
    /// says whether the function library of a version from before announcements is on the server;
    /// it is asked only when no layout has been decided yet.
    func decide(for me: Member, legacyLibraryFound: () -> Bool) -> Decision {
        guard let active else {
            if legacyLibraryFound() { return .initialize(active: SessionLayout.perSessionSlot.rawValue, legacy: true) }
            return .initialize(active: newestCommon(with: me), legacy: false)
        }
        if !me.layouts.contains(active) {
            return .refuse(
                active > me.layouts.upperBound
                    ? "the active storage layout is \(active), but this sessiond supports layouts up to \(me.layouts.upperBound): it is older than the fleet's finalized layout; run a newer version (there is no downgrade past a finalized layout)"
                    : "the active storage layout is \(active), but this sessiond supports layouts \(me.layouts.lowerBound) to \(me.layouts.upperBound) only: upgrade through a version that supports both"
            )
        }
        if !legacy, case let target = newestCommon(with: me), target > active { return .advance(from: active, to: target) }
        return .keep
    }

    /// What `sessiond --finalize-layout` does for `me`: the layout to make active, or why not.
    /// It refuses while a live instance does not support `me`'s newest layout.
    func finalize(for me: Member) -> Result<Int, FinalizeRefusal> {
        let behind = members.filter { $0.instance != me.instance && $0.layouts.upperBound < me.layouts.upperBound }
        if !behind.isEmpty { return .failure(FinalizeRefusal(newest: me.layouts.upperBound, behind: behind)) }
        return .success(max(active ?? 0, me.layouts.upperBound))
    }

    /// Live instances still need an older layout than the one to finalize.
    struct FinalizeRefusal: Error, Equatable, CustomStringConvertible {
        let newest: Int
        let behind: [Member]

        var description: String {
            let names = behind.map { "\($0.instance) (layouts up to \($0.layouts.upperBound))" }.joined(separator: ", ")
            return "cannot finalize layout \(newest): live instances still need an older one: \(names); upgrade or stop them first"
        }
    }

    /// The newest layout every live instance (and `me`) supports.
    private func newestCommon(with me: Member) -> Int {
        members.filter { $0.instance != me.instance }.reduce(me.layouts.upperBound) { min($0, $1.layouts.upperBound) }
    }
}
