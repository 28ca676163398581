import RedisClient
import Testing

@testable import SessionService

/// The session functions' protocol, encoded and decoded without Redis: each call's function name,
/// `KEYS` and `ARGV` exactly as the Lua reads them, and each reply the Lua gives, decoded.
/// (`WriteIDTests` and every API suite run the same calls against real Redis.)
@Suite struct SessionCallTests {
    let id = SessionID(parsing: "00112233445566778899aabbccddeeff")!
    let keys = SessionKeys(prefix: "sd:")
    let writeID = WriteID(bytes: Array("12345678".utf8))
    let digest = [UInt8](repeating: 0xAA, count: 16)
    var holder: SessionCall.Holder { .init(secretDigest: digest, onReuse: .revoke) }
    let limits = SessionLimits(maxDataBytes: 262_144, maxAttributes: 256, maxNameBytes: 128)
    let attribute = Session.Attribute(name: "cart", raw: Array(#"{"n":1}"#.utf8))

    func text(_ arguments: [RedisArgument]) -> [String] {
        arguments.map { String(decoding: $0.bytes, as: UTF8.self) }
    }

    @Test func everyFunctionIsNamedByTheProtocolVersion() {
        let calls: [SessionCall] = [
            .touch(id, holder, slide: .never), .delete(id, writeID, nil, tombstoneRetention: .seconds(60), reason: .logout),
            .indexAdd(user: "alice", id, lifetime: .seconds(1)),
        ]
        #expect(calls.map(\.function) == ["sessiond_v5_touch", "sessiond_v5_delete", "sessiond_v5_index_add"])
        #expect(SessionFunctions.library.name == "sessiond_v5")
        for name in [
            "create", "touch", "write", "rotate", "delete", "index_add", "import", "drop_moved", "fleet_announce", "fleet_set", "sweep", "lease",
            "log_append",
        ] {
            #expect(SessionFunctions.library.source.contains("redis.register_function('sessiond_v5_\(name)'"), "\(name)")
        }
        #expect(SessionFunctions.library.source.contains("function_name = 'sessiond_v5_events_read'"))
    }

    @Test func createCarriesItsTimesInMillisecondsAndAbsentPartsAsEmpty() {
        let call = SessionCall.create(
            id, writeID, user: nil, idleTimeout: .seconds(1800), absoluteTimeout: .seconds(86400), secretDigest: digest,
            device: nil, data: [attribute]
        )
        #expect(text(call.keys(keys, layout: .perSessionSlot)) == ["sd:s:{00112233445566778899aabbccddeeff}"])
        let arguments = call.arguments
        #expect(text(Array(arguments[0..<4])) == ["12345678", "", "1800000", "86400000"])
        #expect(arguments[4].bytes == digest)
        #expect(text(Array(arguments[5...])) == ["", "cart", #"{"n":1}"#])
        let withUser = SessionCall.create(
            id, writeID, user: "alice", idleTimeout: .milliseconds(1500), absoluteTimeout: .seconds(2), secretDigest: digest,
            device: Array("{}".utf8), data: []
        )
        #expect(text(withUser.arguments).enumerated().filter { [1, 2, 5].contains($0.offset) }.map(\.element) == ["alice", "1500", "{}"])
    }

    @Test func aTouchSlidesAfterItsIntervalOrNever() {
        let after = SessionCall.touch(id, holder, slide: .after(.seconds(60)))
        #expect(text([after.arguments[0], after.arguments[2]]) == ["60000", "revoke"])
        #expect(after.arguments[1].bytes == digest)
        let never = SessionCall.touch(id, .init(secretDigest: digest, onReuse: .reject), slide: .never)
        #expect(text([never.arguments[0], never.arguments[2]]) == ["", "reject"])
    }

    @Test func aWriteCarriesItsConditionModeSlideAndEstimate() {
        let patch = SessionCall.write(
            id, writeID, holder, ifMatch: .versions([3, 4]), mode: .patch, slide: .after(.seconds(60)), clockEstimate: 1_700_000_000_000,
            limits: limits, attributes: [attribute]
        )
        let patchText = text(patch.arguments)
        #expect(patchText[0] == "12345678")
        #expect(Array(patchText[2...]) == ["3,4", "patch", "60000", "1700000000000", "revoke", "262144", "256", "cart", #"{"n":1}"#])
        let replace = SessionCall.write(id, writeID, holder, ifMatch: .any, mode: .replace, slide: .after(.zero), clockEstimate: nil, limits: limits, attributes: [])
        #expect(Array(text(replace.arguments)[2...]) == ["*", "replace", "0", "", "revoke", "262144", "256"])
        let unconditional = SessionCall.write(id, writeID, holder, ifMatch: nil, mode: .patch, slide: .never, clockEstimate: nil, limits: limits, attributes: [])
        #expect(Array(text(unconditional.arguments)[2...]) == ["", "patch", "", "", "revoke", "262144", "256"])
    }

    @Test func aRotationAndADeleteCarryTheirPolicies() {
        let rotation = SessionCall.rotate(id, writeID, holder, newSecretDigest: [UInt8](repeating: 0xBB, count: 16), grace: .seconds(10), reauthenticated: true)
        #expect(rotation.arguments[2].bytes == [UInt8](repeating: 0xBB, count: 16))
        #expect(text(Array(rotation.arguments[3...])) == ["10000", "1", "revoke"])
        let logout = SessionCall.delete(id, writeID, holder, tombstoneRetention: .seconds(60), reason: .logout)
        #expect(text(logout.keys(keys, layout: .perSessionSlot)) == ["sd:s:{00112233445566778899aabbccddeeff}", "sd:t:{00112233445566778899aabbccddeeff}"])
        #expect(text([logout.arguments[1], logout.arguments[3], logout.arguments[4]]) == ["60000", "revoke", "logout"])
        #expect(logout.arguments[2].bytes == digest)
        let admin = SessionCall.delete(id, writeID, nil, tombstoneRetention: .seconds(60), reason: .logout)
        #expect(admin.arguments[2].bytes == [], "an administrator presents no token")
        let index = SessionCall.indexAdd(user: "alice", id, lifetime: .seconds(3600))
        #expect(text(index.keys(keys, layout: .perSessionSlot)) == ["sd:u:{alice}"])
        #expect(text(index.arguments) == ["00112233445566778899aabbccddeeff", "", "3600000"])
        #expect(index.session == nil && logout.session == id)
    }

    @Test func repliesDecodeToOutcomes() throws {
        let write = SessionCall.write(id, writeID, holder, ifMatch: nil, mode: .patch, slide: .never, clockEstimate: nil, limits: limits, attributes: [])
        #expect(try write.decode(.integer(1)) == .done)
        #expect(try write.decode(.null) == .noSession)
        let reused = RESPValue.array([.bulkString(Array("reused".utf8)), .integer(1), .bulkString(Array("alice".utf8))])
        #expect(try write.decode(reused) == .tokenReused(revoked: true, user: "alice"))
        let refused = RESPValue.array([.bulkString(Array("reused".utf8)), .integer(0), .bulkString([])])
        #expect(try write.decode(refused) == .tokenReused(revoked: false, user: nil))
        let delete = SessionCall.delete(id, writeID, nil, tombstoneRetention: .seconds(60), reason: .logout)
        #expect(try delete.decode(.array([.integer(1), .bulkString(Array("bob".utf8))])) == .deleted(user: "bob"))
        #expect(try delete.decode(.array([.integer(1), .bulkString([])])) == .deleted(user: nil))
        #expect(try delete.decode(.null) == .noSession)
        #expect(try SessionCall.indexAdd(user: "a", id, lifetime: .seconds(1)).decode(.integer(3)) == .indexSize(3))
    }

    @Test func refusalsDecodeToTheirErrors() {
        let write = SessionCall.write(id, writeID, holder, ifMatch: .versions([1]), mode: .patch, slide: .never, clockEstimate: nil, limits: limits, attributes: [])
        #expect {
            try write.decode(.array([.bulkString(Array("version_mismatch".utf8)), .integer(7)]))
        } throws: { error in
            guard case SessionStoreError.versionMismatch(current: 7) = error else { return false }
            return true
        }
        #expect {
            try write.decode(.array([.bulkString(Array("too_large".utf8)), .integer(300_000), .integer(12)]))
        } throws: { error in
            guard case SessionStoreError.sessionTooLarge(let message) = error else { return false }
            return message.contains("300000 bytes in 12 attributes") && message.contains("262144 bytes and 256 attributes")
        }
        let rotation = SessionCall.rotate(id, writeID, holder, newSecretDigest: digest, grace: .zero, reauthenticated: false)
        #expect {
            try rotation.decode(.array([.bulkString(Array("superseded".utf8))]))
        } throws: { error in
            guard case SessionStoreError.tokenSuperseded = error else { return false }
            return true
        }
    }

    @Test func aReplyNoFunctionGivesIsCorruptNotAGuess() {
        let write = SessionCall.write(id, writeID, holder, ifMatch: nil, mode: .patch, slide: .never, clockEstimate: nil, limits: limits, attributes: [])
        let delete = SessionCall.delete(id, writeID, nil, tombstoneRetention: .seconds(60), reason: .logout)
        let strange: [(SessionCall, RESPValue)] = [
            (write, .integer(2)), (write, .array([.bulkString(Array("version_mismatch".utf8)), .bulkString(Array("x".utf8))])),
            (write, .array([.bulkString(Array("unknown".utf8))])), (delete, .integer(1)), (delete, .array([.integer(0), .bulkString([])])),
            (SessionCall.indexAdd(user: "a", id, lifetime: .seconds(1)), .bulkString([])),
        ]
        for (call, reply) in strange {
            #expect("\(call.function) \(reply)".isEmpty == false)
            #expect {
                try call.decode(reply)
            } throws: { error in
                guard case SessionStoreError.corrupt = error else { return false }
                return true
            }
        }
    }

    @Test func layoutTwoTagsEveryKeyOfASessionByItsBucketAndIndexesItsDeadline() {
        // 0x0011 = 17: the low 10 bits of the id's first two bytes.
        #expect(SessionKeys.bucket(of: id) == 17)
        #expect(SessionKeys.bucket(of: SessionID(parsing: "ffff" + String(repeating: "0", count: 28))!) == 1023)
        let logout = SessionCall.delete(id, writeID, nil, tombstoneRetention: .seconds(60), reason: .logout)
        #expect(text(logout.keys(keys, layout: .bucketed)) == [
            "sd:{b17}:s:00112233445566778899aabbccddeeff", "sd:{b17}:t:00112233445566778899aabbccddeeff", "sd:{b17}:d",
        ])
        // One slot: the bucket's tag.
        #expect(Set(logout.keys(keys, layout: .bucketed).map { HashSlot.of($0.bytes) }).count == 1)
        // The last two arguments: the index member (the raw id in layout 2, nothing in layout 1),
        // then the event log's retention (empty when the call records no event).
        let placed = logout.arguments(in: .bucketed)
        #expect(placed[placed.count - 2].bytes == id.bytes)
        #expect(logout.arguments(in: .perSessionSlot).dropLast().last?.bytes == [])
        #expect(placed.last?.bytes == [])
        #expect(Array(placed.dropLast(2)).map(\.bytes) == logout.arguments.map(\.bytes))
        // With events (layout 3) the outbox comes last: on one server the event log, on a cluster
        // the bucket's own, in the bucket's slot.
        #expect(text(logout.keys(keys, layout: .swept, events: .seconds(60))).last == "sd:{e}:log")
        #expect(text(logout.arguments(in: .swept, events: .seconds(60))).last == "60000")
        let clusterKeys = SessionKeys(prefix: "sd:", outboxPerBucket: true)
        let clustered = logout.keys(clusterKeys, layout: .swept, events: .seconds(60))
        #expect(text(clustered).last == "sd:{b17}:o")
        #expect(Set(clustered.map { HashSlot.of($0.bytes) }).count == 1)
        // The user's index is the same in both layouts and takes no member.
        let index = SessionCall.indexAdd(user: "alice", id, lifetime: .seconds(1))
        #expect(text(index.keys(keys, layout: .bucketed)) == ["sd:u:{alice}"])
        #expect(index.arguments(in: .bucketed).map(\.bytes) == index.arguments.map(\.bytes))
    }

    @Test func bucketsFillEvenly() {
        var counts = [Int](repeating: 0, count: SessionKeys.bucketCount)
        for _ in 0..<(SessionKeys.bucketCount * 64) {
            counts[SessionKeys.bucket(of: SessionID(bytes: (0..<16).map { _ in UInt8.random(in: 0...255) }))] += 1
        }
        // 64 expected per bucket; a fair bucket stays within ±40 of it (about 5 standard deviations).
        #expect(counts.min()! > 24 && counts.max()! < 104, "\(counts.min()!)...\(counts.max()!)")
    }
}
