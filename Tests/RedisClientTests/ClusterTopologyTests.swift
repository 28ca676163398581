import Testing

@testable import RedisClient

/// The cluster router's pure parts as values: the slot function, the map, redirects, and the
/// refresh loop's decisions. No processes.
@Suite struct ClusterTopologyTests {
    let a = RedisEndpoint(host: "127.0.0.1", port: 7000)
    let b = RedisEndpoint(host: "127.0.0.1", port: 7001)
    let c = RedisEndpoint(host: "127.0.0.1", port: 7002)
    let aReplica = RedisEndpoint(host: "127.0.0.1", port: 7003)
    let now = ContinuousClock.now

    // MARK: - Slots

    @Test func crc16MatchesTheClusterSpecsVectors() {
        #expect(HashSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        // Redis' own answers (CLUSTER KEYSLOT) for these keys.
        #expect(HashSlot.of(Array("foo".utf8)) == 12182)
        #expect(HashSlot.of(Array("bar".utf8)) == 5061)
        #expect(HashSlot.of(Array("".utf8)) == 0)
    }

    @Test func aNonEmptyHashTagIsHashedAloneAndEveryOtherKeyWhole() {
        let tagged = HashSlot.of(Array("sd:s:{abc}".utf8))
        #expect(HashSlot.of(Array("sd:u:{abc}".utf8)) == tagged)
        #expect(HashSlot.of(Array("abc".utf8)) == tagged)
        #expect(HashSlot.of(Array("{abc}{def}".utf8)) == tagged, "only the first tag counts")
        #expect(HashSlot.of(Array("x{}abc".utf8)) == HashSlot.of(Array("x{}abc".utf8)))
        #expect(HashSlot.hashedPart(of: Array("x{}abc".utf8)).elementsEqual("x{}abc".utf8), "an empty tag hashes the whole key")
        #expect(HashSlot.hashedPart(of: Array("a{b".utf8)).elementsEqual("a{b".utf8), "an open tag hashes the whole key")
        #expect(HashSlot.hashedPart(of: Array("a{b}{c}".utf8)).elementsEqual("b".utf8))
        #expect(HashSlot.hashedPart(of: Array("a}b{c}".utf8)).elementsEqual("c".utf8))
    }

    @Test func commandsAreRoutedByTheirFirstKey() {
        let session = HashSlot.of(Array("sd:s:{id}".utf8))
        #expect(HashSlot.of(command: ["FCALL", "session_touch", "1", "sd:s:{id}", "60000"]) == session)
        #expect(HashSlot.of(command: ["fcall", "f", "0"]) == nil, "a function without keys goes anywhere")
        #expect(HashSlot.of(command: ["ZRANGE", "sd:u:{id}", "0", "-1"]) == session)
        #expect(HashSlot.of(command: ["ROLE"]) == nil)
        #expect(HashSlot.of(command: ["FUNCTION", "LOAD", "REPLACE", "code"]) == nil)
    }

    // MARK: - The map

    /// A CLUSTER SLOTS reply: each range with its primary and replicas.
    func reply(_ ranges: [(ClosedRange<Int>, RedisEndpoint, [RedisEndpoint])], hostOf: (RedisEndpoint) -> String = { $0.host }) -> RESPValue {
        .array(ranges.map { range, primary, replicas in
            .array([.integer(Int64(range.lowerBound)), .integer(Int64(range.upperBound))] + ([primary] + replicas).map { node in
                .array([.bulkString(Array(hostOf(node).utf8)), .integer(Int64(node.port)), .bulkString(Array("id\(node.port)".utf8))])
            })
        })
    }

    func threeShards() throws -> ClusterSlotMap {
        try ClusterSlotMap(clusterSlots: reply([(0...5460, a, [aReplica]), (5461...10922, b, []), (10923...16383, c, [])]), from: a)
    }

    @Test func aClusterSlotsReplyBecomesAMapOfEverySlot() throws {
        let map = try threeShards()
        #expect(map.coveredSlots == 16384)
        #expect(map.primary(forSlot: 0) == a && map.primary(forSlot: 5460) == a)
        #expect(map.primary(forSlot: 5461) == b && map.primary(forSlot: 16383) == c)
        #expect(map.primaries == [a, b, c])
        #expect(map.replicas(of: a) == [aReplica])
        #expect(map.slotRanges(of: b) == [5461...10922])
        #expect(map.nodes == [a, b, c, aReplica])
    }

    @Test func anEmptyHostIsTheNodeAskedAndAnUnknownOneIsLeftOut() throws {
        let map = try ClusterSlotMap(
            clusterSlots: reply([(0...100, a, []), (101...200, b, [])]) { $0 == a ? "" : "?" },
            from: RedisEndpoint(host: "10.0.0.9", port: 9999)
        )
        #expect(map.primary(forSlot: 0) == RedisEndpoint(host: "10.0.0.9", port: a.port))
        #expect(map.primary(forSlot: 150) == nil)
        #expect(map.coveredSlots == 101)
    }

    @Test func aReplyOfAnotherShapeIsAProtocolError() {
        #expect(throws: RedisClientError.self) { try ClusterSlotMap(clusterSlots: .integer(1), from: a) }
        #expect(throws: RedisClientError.self) {
            try ClusterSlotMap(clusterSlots: .array([.array([.integer(5), .integer(1), .array([])])]), from: a)
        }
    }

    @Test func movedToAReplicaOfTheSameShardPromotesItForTheWholeShard() throws {
        var map = try threeShards()
        map.applyMoved(slot: 17, to: aReplica)
        #expect(map.primary(forSlot: 0) == aReplica && map.primary(forSlot: 5460) == aReplica)
        #expect(map.replicas(of: aReplica) == [a], "the old primary is a replica now")
        #expect(map.primary(forSlot: 5461) == b)
    }

    @Test func movedToAnotherPrimaryOrAnUnknownNodeMovesOnlyThatSlot() throws {
        var map = try threeShards()
        map.applyMoved(slot: 100, to: b)
        #expect(map.primary(forSlot: 100) == b && map.primary(forSlot: 99) == a && map.primary(forSlot: 101) == a)
        #expect(map.slotRanges(of: a) == [0...99, 101...5460])
        let newcomer = RedisEndpoint(host: "127.0.0.1", port: 7010)
        map.applyMoved(slot: 200, to: newcomer)
        #expect(map.primary(forSlot: 200) == newcomer)
        #expect(map.primaries.contains(newcomer))
    }

    @Test func redirectsAreParsedAndAnEmptyHostIsTheNodeThatAnswered() {
        let moved = ClusterRedirect(RedisClientError(code: .serverError, message: "MOVED 3999 127.0.0.1:6381"), answeredBy: a)
        #expect(moved == ClusterRedirect(kind: .moved, slot: 3999, endpoint: RedisEndpoint(host: "127.0.0.1", port: 6381)))
        let ask = ClusterRedirect(RedisClientError(code: .serverError, message: "ASK 1 :6390"), answeredBy: a)
        #expect(ask == ClusterRedirect(kind: .ask, slot: 1, endpoint: RedisEndpoint(host: a.host, port: 6390)))
        let ipv6 = ClusterRedirect(RedisClientError(code: .serverError, message: "MOVED 2 [::1]:7000"), answeredBy: a)
        #expect(ipv6?.endpoint == RedisEndpoint(host: "::1", port: 7000))
        #expect(ClusterRedirect(RedisClientError(code: .serverError, message: "ERR MOVED 1 a:1"), answeredBy: a) == nil)
        #expect(ClusterRedirect(RedisClientError(code: .serverError, message: "MOVED 99999 a:1"), answeredBy: a) == nil)
        #expect(ClusterRedirect(RedisClientError(code: .connectionClosed, message: "MOVED 1 a:1"), answeredBy: a) == nil)
    }

    // MARK: - The refresh loop

    @Test func aThousandTriggersDuringARefreshCostOneMoreRound() throws {
        var machine = ClusterStateMachine(seeds: [a])
        let started = machine.moved(slot: 0, to: b)
        #expect(started, "the first trigger starts the loop")
        let first = machine.nextRound(now: now)
        #expect(first.delay == .zero)
        #expect(first.sources.first == b, "the node that redirected is asked first")
        var starts = 0
        for slot in 1..<1000 where machine.moved(slot: slot, to: b) { starts += 1 }
        #expect(starts == 0, "the running loop absorbs every trigger")
        let again = try machine.roundFinished(threeShards(), now: now)
        #expect(again, "triggered during the round: one more")
        let second = machine.nextRound(now: now)
        #expect(second.delay == ClusterStateMachine.minimumGap, "rounds keep their distance")
        let done = try machine.roundFinished(threeShards(), now: now + second.delay)
        #expect(!done, "nothing new: the loop ends")
        #expect(!machine.isRefreshing)
    }

    @Test func theSeedsAreAlwaysAskedAndNeverReplaced() throws {
        var machine = ClusterStateMachine(seeds: [RedisEndpoint(host: "seed", port: 1)])
        _ = machine.requestRefresh()
        _ = machine.nextRound(now: now)
        _ = machine.roundFinished(try threeShards(), now: now)
        _ = machine.requestRefresh()
        let round = machine.nextRound(now: now + .seconds(1))
        #expect(round.sources == [a, b, c, aReplica, RedisEndpoint(host: "seed", port: 1)])
    }

    @Test func aDeadPrimaryIsPolledForUntilTheMapNamesAnother() throws {
        var machine = ClusterStateMachine(seeds: [a])
        _ = machine.requestRefresh()
        _ = machine.nextRound(now: now)
        _ = machine.roundFinished(try threeShards(), now: now)
        let decision4 = machine.nodeFailed(a, now: now)
        #expect(decision4)
        let round = machine.nextRound(now: now + .seconds(1))
        #expect(round.sources.last == a, "the dead node is asked last")
        // The cluster has not promoted the replica yet: poll again shortly.
        let decision5 = try machine.roundFinished(threeShards(), now: now + .seconds(1))
        #expect(decision5)
        #expect(machine.nextRound(now: now + .seconds(1)).delay == ClusterStateMachine.pollInterval)
        var promoted = try threeShards()
        promoted.applyMoved(slot: 0, to: aReplica)
        let decision6 = machine.roundFinished(promoted, now: now + .seconds(2))
        #expect(!decision6, "its slots have a new primary: done")
        #expect(machine.map.primary(forSlot: 0) == aReplica)
        #expect(machine.failing.isEmpty)
    }

    @Test func aMapCoveringFewerSlotsIsBelievedOnlyWhenItKeepsComingBack() throws {
        var machine = ClusterStateMachine(seeds: [a])
        _ = machine.requestRefresh()
        _ = machine.nextRound(now: now)
        _ = machine.roundFinished(try threeShards(), now: now)
        let partial = try ClusterSlotMap(clusterSlots: reply([(0...5460, a, [])]), from: a)
        _ = machine.requestRefresh()
        _ = machine.nextRound(now: now)
        let decision7 = machine.roundFinished(partial, now: now)
        #expect(decision7, "a stale-looking answer earns another round")
        #expect(machine.map.coveredSlots == 16384)
        _ = machine.nextRound(now: now)
        _ = machine.roundFinished(partial, now: now)
        _ = machine.nextRound(now: now)
        _ = machine.roundFinished(partial, now: now)
        #expect(machine.map.coveredSlots == 5461, "three rounds in a row: believed")
    }

    @Test func failedRoundsBackOffAndTheLoopGoesOnWithoutAMap() {
        var machine = ClusterStateMachine(seeds: [a])
        _ = machine.requestRefresh()
        _ = machine.nextRound(now: now)
        let decision8 = machine.roundFinished(nil, now: now)
        #expect(decision8, "no map yet: keep trying")
        let second = machine.nextRound(now: now)
        let decision9 = machine.roundFinished(nil, now: now + second.delay)
        #expect(decision9)
        let third = machine.nextRound(now: now + second.delay)
        #expect(third.delay > second.delay || third.delay >= .milliseconds(100))
    }

    @Test func theMapIsRefreshedPeriodicallyWhenNothingElseAsks() throws {
        var machine = ClusterStateMachine(seeds: [a])
        let decision10 = machine.refreshIfDue(now: now)
        #expect(decision10, "no map: due at once")
        _ = machine.nextRound(now: now)
        _ = machine.roundFinished(try threeShards(), now: now)
        let decision11 = machine.refreshIfDue(now: now + .seconds(1))
        #expect(!decision11)
        let decision12 = machine.refreshIfDue(now: now + ClusterStateMachine.periodicInterval)
        #expect(decision12)
    }
}
