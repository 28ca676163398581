import RedisClient
import Testing

@testable import SessionService

/// The fleet's layout negotiation without Redis: which layout to write given the announced
/// versions, when the fleet moves on, when `--finalize-layout` may finalize, when an instance
/// must refuse to run. (StorageLayoutTests run it on real servers.)
@Suite struct FleetLayoutTests {
    static func member(_ name: String, _ layouts: ClosedRange<Int>, protocol version: Int = 4) -> FleetLayout.Member {
        .init(instance: name, layouts: layouts, functionProtocol: version)
    }

    let me = member("me", 1...2)

    @Test func aFreshRedisStartsAtTheNewestLayoutEveryLiveInstanceSupports() {
        let alone = FleetLayout(active: nil, legacy: false, members: [me])
        #expect(alone.decide(for: me, legacyLibraryFound: { false }) == .initialize(active: 2, legacy: false))
        // Beside an announced instance that writes only layout 1, the fleet starts at layout 1.
        let mixed = FleetLayout(active: nil, legacy: false, members: [me, Self.member("old", 1...1)])
        #expect(mixed.decide(for: me, legacyLibraryFound: { false }) == .initialize(active: 1, legacy: false))
    }

    @Test func aRedisAVersionFromBeforeAnnouncementsHasUsedStartsAtLayoutOneAndWaitsForTheOperator() {
        let fresh = FleetLayout(active: nil, legacy: false, members: [me])
        #expect(fresh.decide(for: me, legacyLibraryFound: { true }) == .initialize(active: 1, legacy: true))
        // The library is asked about only while no layout is decided.
        let decided = FleetLayout(active: 1, legacy: true, members: [me])
        #expect(decided.decide(for: me, legacyLibraryFound: { Issue.record("asked"); return true }) == .keep)
        // While legacy instances may run, nothing moves the fleet on by itself, however new every
        // announced instance is.
        let allNew = FleetLayout(active: 1, legacy: true, members: [me, Self.member("other", 1...2)])
        #expect(allNew.decide(for: me, legacyLibraryFound: { false }) == .keep)
    }

    @Test func theFleetMovesOnByItselfOnceTheLastOlderInstanceIsGone() {
        let old = Self.member("old", 1...1)
        let withOld = FleetLayout(active: 1, legacy: false, members: [me, old])
        #expect(withOld.decide(for: me, legacyLibraryFound: { false }) == .keep, "an instance still writes only layout 1")
        let without = FleetLayout(active: 1, legacy: false, members: [me])
        #expect(without.decide(for: me, legacyLibraryFound: { false }) == .advance(from: 1, to: 2))
        // A future version (layouts 2...3) beside this one: the fleet stays at 2 until this one is gone.
        let future = Self.member("future", 2...3, protocol: 5)
        #expect(FleetLayout(active: 2, legacy: false, members: [me, future]).decide(for: future, legacyLibraryFound: { false }) == .keep)
        #expect(FleetLayout(active: 2, legacy: false, members: [future]).decide(for: future, legacyLibraryFound: { false }) == .advance(from: 2, to: 3))
    }

    @Test func theActiveLayoutNeverMovesBack() {
        // An instance that supports layout 1 only joins a fleet at layout 2: the fleet stays; the
        // instance is refused.
        let old = Self.member("old", 1...1)
        #expect(FleetLayout(active: 2, legacy: false, members: [me, old]).decide(for: me, legacyLibraryFound: { false }) == .keep)
        guard case .refuse(let message) = FleetLayout(active: 2, legacy: false, members: [me, old]).decide(for: old, legacyLibraryFound: { false }) else {
            Issue.record("an instance older than the finalized layout must refuse")
            return
        }
        #expect(message.contains("active storage layout is 2") && message.contains("supports layouts up to 1"))
    }

    @Test func anInstanceTooOldForTheActiveLayoutRefusesNamingBothVersions() {
        guard case .refuse(let message) = FleetLayout(active: 3, legacy: false, members: [me]).decide(for: me, legacyLibraryFound: { false }) else {
            Issue.record("layout 3 is past this build")
            return
        }
        #expect(message.contains("active storage layout is 3") && message.contains("supports layouts up to 2"))
        // One that dropped the active layout refuses too.
        let tooNew = Self.member("new", 3...4, protocol: 6)
        guard case .refuse(let newer) = FleetLayout(active: 2, legacy: false, members: [tooNew]).decide(for: tooNew, legacyLibraryFound: { false }) else {
            Issue.record("layout 2 is before that build")
            return
        }
        #expect(newer.contains("supports layouts 3 to 4"))
    }

    @Test func finalizingRefusesWhileAnAnnouncedInstanceNeedsAnOlderLayout() {
        let old = Self.member("old#1a2b", 1...1)
        let blocked = FleetLayout(active: 1, legacy: true, members: [me, old]).finalize(for: me)
        #expect(blocked == .failure(.init(newest: 2, behind: [old])))
        if case .failure(let refusal) = blocked { #expect(refusal.description.contains("old#1a2b (layouts up to 1)")) }
        // Legacy instances cannot be seen: finalizing is the operator's word that none runs.
        #expect(FleetLayout(active: 1, legacy: true, members: [me]).finalize(for: me) == .success(2))
        #expect(FleetLayout(active: nil, legacy: false, members: []).finalize(for: me) == .success(2))
        // Already final: the same answer (the command exits 0 at once).
        #expect(FleetLayout(active: 2, legacy: false, members: [me]).finalize(for: me) == .success(2))
    }

    @Test func theFleetStateReadsAsTheFunctionsWriteIt() {
        let reply = RESPValue.array([
            .bulkString(Array("2".utf8)), .bulkString([]),
            .array([.bulkString(Array("a#01".utf8)), .bulkString(Array("1 2 4 1765000000000".utf8))]),
        ])
        #expect(FleetLayout(reply: reply) == FleetLayout(active: 2, legacy: false, members: [Self.member("a#01", 1...2)]))
        #expect(FleetLayout(reply: .array([.bulkString([]), .bulkString(Array("1".utf8)), .array([])])) == FleetLayout(active: nil, legacy: true, members: []))
        #expect(FleetLayout(reply: .array([.bulkString([]), .bulkString([]), .array([.bulkString(Array("a".utf8)), .bulkString(Array("2 1 4 0".utf8))])])) == nil)
    }

    @Test func onlyLibrariesOfOlderUnannouncedVersionsAreCollected() {
        #expect(FleetRegistry.protocolVersion(ofLibrary: "sessiond") == 1)
        #expect(FleetRegistry.protocolVersion(ofLibrary: "sessiond_v3") == 3)
        #expect(FleetRegistry.protocolVersion(ofLibrary: "sessiondx") == nil)
        #expect(FleetRegistry.protocolVersion(ofLibrary: "other") == nil)
        let list = RESPValue.array([
            .array([.bulkString(Array("library_name".utf8)), .bulkString(Array("sessiond_v3".utf8)), .bulkString(Array("engine".utf8))]),
            .array([.bulkString(Array("library_name".utf8)), .bulkString(Array("sessiond".utf8))]),
        ])
        #expect(FleetRegistry.libraryNames(in: list) == ["sessiond_v3", "sessiond"])
    }
}
