import RedisClient
import RedisTestSupport
import Testing

@testable import SessionService

/// The session functions called twice with one write id, as a retry after a lost reply does: the
/// repeat answers as the first application did and changes nothing. Real Redis, no HTTP.
@Suite struct WriteIDTests {
    static let key: RedisArgument = "sd:s:{00112233445566778899aabbccddeeff}"
    static let tombstone: RedisArgument = "sd:t:{00112233445566778899aabbccddeeff}"

    static func writeID(_ byte: UInt8) -> RedisArgument { RedisArgument(bytes: [UInt8](repeating: byte, count: 8)) }

    static func client(_ redis: RedisServer) throws -> RedisClient {
        RedisClient(configuration: try RedisConfiguration(url: redis.url), functionLibraries: [SessionFunctions.library])
    }

    static func create(_ client: RedisClient, writeID: RedisArgument) async throws -> RESPValue {
        try await client.fcall("session_create", keys: [key], arguments: [writeID, "alice", "600000", "3600000", "a", "1"])
    }

    static func patch(_ client: RedisClient, writeID: RedisArgument, _ value: String) async throws -> RESPValue {
        try await client.fcall("session_write", keys: [key], arguments: [writeID, "", "patch", "a", RedisArgument(value)])
    }

    static func version(_ client: RedisClient) async throws -> String? {
        try await client.send("HGET", key, "v").string
    }

    @Test func aRepeatedCreateReturnsTheSessionItMadeAndAnotherCreateIsACollision() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        let first = try await Self.create(client, writeID: Self.writeID(1))
        let repeated = try await Self.create(client, writeID: Self.writeID(1))
        #expect(Set(first.array ?? []) == Set(repeated.array ?? []))
        await #expect(throws: RedisClientError.self) { try await Self.create(client, writeID: Self.writeID(2)) }
        await client.shutdown()
    }

    @Test func aRepeatedPatchIsAppliedOnceAndAnsweredWithTheSession() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        _ = try await Self.create(client, writeID: Self.writeID(1))
        _ = try await Self.patch(client, writeID: Self.writeID(2), "2")
        let repeated = try await Self.patch(client, writeID: Self.writeID(2), "2")
        #expect(try await Self.version(client) == "2", "applied once")
        #expect(repeated.array?.contains(.bulkString(Array("2".utf8))) == true, "answered with the session as it is")
        // A repeat is recognised even after other writes, as long as it is among the last eight.
        for byte in UInt8(3)...9 { _ = try await Self.patch(client, writeID: Self.writeID(byte), "\(byte)") }
        _ = try await Self.patch(client, writeID: Self.writeID(2), "2")
        #expect(try await Self.version(client) == "9")
        #expect(try await client.send("HGET", Self.key, ".a").string == "9", "the repeat did not write its old value back")
        // Memory is bounded: a ninth newer write makes the session forget the oldest id.
        _ = try await Self.patch(client, writeID: Self.writeID(10), "10")
        #expect(try await client.send("HSTRLEN", Self.key, "w").integer == 64)
        _ = try await Self.patch(client, writeID: Self.writeID(2), "2")
        #expect(try await Self.version(client) == "11", "an id older than the last eight writes is a new write")
        await client.shutdown()
    }

    @Test func aRepeatedDeleteAnswersAsTheFirstDidAndItsTombstoneExpires() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        _ = try await Self.create(client, writeID: Self.writeID(1))
        let arguments = [Self.writeID(2), "60000"]
        let first = try await client.fcall("session_delete", keys: [Self.key, Self.tombstone], arguments: arguments)
        let repeated = try await client.fcall("session_delete", keys: [Self.key, Self.tombstone], arguments: arguments)
        let other = try await client.fcall("session_delete", keys: [Self.key, Self.tombstone], arguments: [Self.writeID(3), "60000"])
        #expect(first == .array([.integer(1), .bulkString(Array("alice".utf8))]))
        #expect(repeated == first)
        #expect(other == .array([.integer(0), .bulkString([])]), "another delete finds nothing")
        let remaining = try #require(try await client.send("PTTL", Self.tombstone).integer)
        #expect(remaining > 0 && remaining <= 60000, "the tombstone expires (\(remaining) ms)")
        await client.shutdown()
    }

    @Test func aRepeatedRotationStepReturnsWhatItTookAndMadeOnce() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        _ = try await Self.create(client, writeID: Self.writeID(1))
        let take = [Self.writeID(2), "60000"]
        let taken = try await client.fcall("session_take", keys: [Self.key, Self.tombstone], arguments: take)
        let takenAgain = try await client.fcall("session_take", keys: [Self.key, Self.tombstone], arguments: take)
        #expect(taken == takenAgain)
        #expect(try await client.send("EXISTS", Self.key) == .integer(0), "the old token is dead")
        #expect(try await client.fcall("session_take", keys: [Self.key, Self.tombstone], arguments: [Self.writeID(3), "60000"]) == .null)

        let newKey: RedisArgument = "sd:s:{ffeeddccbbaa99887766554433221100}"
        let fields = (taken.array ?? []).compactMap { $0.bytes.map { RedisArgument(bytes: $0) } }
        let imported = try await client.fcall("session_import", keys: [newKey], arguments: [Self.writeID(2)] + fields)
        let importedAgain = try await client.fcall("session_import", keys: [newKey], arguments: [Self.writeID(2)] + fields)
        #expect(Set(imported.array ?? []) == Set(importedAgain.array ?? []))
        #expect(try await client.send("HGET", newKey, "v").string == "1")
        await #expect(throws: RedisClientError.self) {
            try await client.fcall("session_import", keys: [newKey], arguments: [Self.writeID(4)] + fields)
        }
        await client.shutdown()
    }

    @Test func aWriteIDOfTheWrongLengthIsRefused() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        let error = await #expect(throws: RedisClientError.self) { try await Self.create(client, writeID: "short") }
        #expect(error?.message.contains("write id") == true)
        await client.shutdown()
    }
}
