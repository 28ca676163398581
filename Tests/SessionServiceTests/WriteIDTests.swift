import RedisClient
import RedisTestSupport
import Testing

@testable import SessionService

/// The session functions called twice with one write id, as a retry after a lost reply does: the
/// repeat answers as the first application did and changes nothing. Each is called as sessiond
/// calls it: in a `MULTI` block with an `HGETALL` of the session after it. Real Redis, no HTTP.
@Suite struct WriteIDTests {
    static let key: RedisArgument = "sd:s:{00112233445566778899aabbccddeeff}"
    static let tombstone: RedisArgument = "sd:t:{00112233445566778899aabbccddeeff}"

    static func writeID(_ byte: UInt8) -> RedisArgument { RedisArgument(bytes: [UInt8](repeating: byte, count: 8)) }
    /// A secret digest: 16 bytes, as `SessionToken` makes them.
    static func digest(_ byte: UInt8) -> RedisArgument { RedisArgument(bytes: [UInt8](repeating: byte, count: 16)) }

    static func client(_ redis: RedisServer) throws -> RedisClient {
        RedisClient(configuration: try RedisConfiguration(url: redis.url), functionLibraries: [SessionFunctions.library])
    }

    /// The function's result and the session after it, as sessiond reads them.
    static func call(_ client: RedisClient, _ function: String, _ arguments: [RedisArgument]) async throws -> (result: RESPValue, read: RESPValue) {
        try await client.fcall(function, keys: [key], arguments: arguments, then: ["HGETALL", key])
    }

    static func create(_ client: RedisClient, writeID: RedisArgument) async throws -> (result: RESPValue, read: RESPValue) {
        try await call(client, "session_create", [writeID, "alice", "600000", "3600000", digest(0xAA), "", "a", "1"])
    }

    static func patch(_ client: RedisClient, writeID: RedisArgument, _ value: String) async throws -> (result: RESPValue, read: RESPValue) {
        try await call(client, "session_write", [writeID, digest(0xAA), "", "patch", "0", "0", "a", RedisArgument(value)])
    }

    /// The version, from the packed times (see ``SessionMeta``).
    static func version(_ client: RedisClient) async throws -> String? {
        String(SessionMeta.integer(0, in: try #require(try await client.send("HGET", key, "m").bytes)))
    }

    /// The current digest, and the previous one after a rotation (empty before).
    static func digests(_ client: RedisClient) async throws -> (current: [UInt8], previous: [UInt8]) {
        let digests = try #require(try await client.send("HGET", key, "k").bytes)
        return (Array(digests.prefix(16)), Array(digests.dropFirst(16).prefix(16)))
    }

    @Test func aRepeatedCreateReturnsTheSessionItMadeAndAnotherCreateIsACollision() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        let first = try await Self.create(client, writeID: Self.writeID(1))
        let repeated = try await Self.create(client, writeID: Self.writeID(1))
        #expect(first.result == .integer(1) && repeated.result == .integer(1))
        #expect(first.read == repeated.read, "the repeat changed nothing")
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
        #expect(repeated.result == .integer(1))
        #expect(repeated.read.array?.contains(.bulkString(Array("2".utf8))) == true, "answered with the session as it is")
        // A repeat is recognised even after other writes, as long as it is among the last eight.
        for byte in UInt8(3)...9 { _ = try await Self.patch(client, writeID: Self.writeID(byte), "\(byte)") }
        _ = try await Self.patch(client, writeID: Self.writeID(2), "2")
        #expect(try await Self.version(client) == "9")
        #expect(try await client.send("HGET", Self.key, ".a").string == "9", "the repeat did not write its old value back")
        // Memory is bounded: a ninth newer write makes the session forget the oldest id.
        _ = try await Self.patch(client, writeID: Self.writeID(10), "10")
        #expect(try await client.send("HSTRLEN", Self.key, "w").integer == 64)
        // No meta field outgrows Redis' default hash-max-listpack-value (64): the hash stays compact.
        #expect(try await client.send("OBJECT", "ENCODING", Self.key).string == "listpack")
        _ = try await Self.patch(client, writeID: Self.writeID(2), "2")
        #expect(try await Self.version(client) == "11", "an id older than the last eight writes is a new write")
        await client.shutdown()
    }

    @Test func aRepeatedDeleteAnswersAsTheFirstDidAndItsTombstoneExpires() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        _ = try await Self.create(client, writeID: Self.writeID(1))
        let arguments = [Self.writeID(2), "60000", "", "revoke"]
        let first = try await client.fcall("session_delete", keys: [Self.key, Self.tombstone], arguments: arguments)
        let repeated = try await client.fcall("session_delete", keys: [Self.key, Self.tombstone], arguments: arguments)
        let other = try await client.fcall("session_delete", keys: [Self.key, Self.tombstone], arguments: [Self.writeID(3), "60000", "", "revoke"])
        #expect(first == .array([.integer(1), .bulkString(Array("alice".utf8)), .integer(0)]))
        #expect(repeated == first)
        #expect(other == .array([.integer(0), .bulkString([]), .integer(0)]), "another delete finds nothing")
        let remaining = try #require(try await client.send("PTTL", Self.tombstone).integer)
        #expect(remaining > 0 && remaining <= 60000, "the tombstone expires (\(remaining) ms)")
        await client.shutdown()
    }

    @Test func aRepeatedRotationAnswersWithTheSecretItMadeAndTheOldSecretCannotRotateAgain() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        _ = try await Self.create(client, writeID: Self.writeID(1))
        let rotation = [Self.writeID(2), Self.digest(0xAA), Self.digest(0xBB), "0", "0"]
        let rotated = try await Self.call(client, "session_rotate", rotation)
        let repeated = try await Self.call(client, "session_rotate", rotation)
        #expect(rotated.result == .integer(1) && repeated.result == .integer(1))
        #expect(rotated.read == repeated.read, "the repeat answers as the rotation did")
        #expect(try await Self.digests(client).current == [UInt8](repeating: 0xBB, count: 16))
        #expect(try await Self.digests(client).previous == [UInt8](repeating: 0xAA, count: 16))
        #expect(try await client.send("OBJECT", "ENCODING", Self.key).string == "listpack")
        // Another rotation with the old secret (a new request, after a grace of 0) is a reuse.
        let reuse = await #expect(throws: RedisClientError.self) {
            try await client.fcall("session_rotate", keys: [Self.key], arguments: [Self.writeID(3), Self.digest(0xAA), Self.digest(0xCC), "0", "0"])
        }
        #expect(reuse?.serverErrorPrefix == "SESSIOND_TOKEN_REUSE")
        #expect(try await Self.digests(client).current == [UInt8](repeating: 0xBB, count: 16))
        await client.shutdown()
    }

    @Test func aSecretThatIsNoneOfTheSessionsWritesNothing() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        _ = try await Self.create(client, writeID: Self.writeID(1))
        // Differs from the session's digest only in its last byte: the comparison covers every word.
        var almost = [UInt8](repeating: 0xAA, count: 16)
        almost[15] = 0xAB
        let write = try await client.fcall("session_write", keys: [Self.key], arguments: [
            Self.writeID(2), RedisArgument(bytes: almost), "", "patch", "0", "0", "a", "2",
        ])
        #expect(write == .null)
        let touch = try await client.fcall("session_touch", keys: [Self.key], arguments: ["0", RedisArgument(bytes: almost)])
        #expect(touch == .null)
        let rotation = try await client.fcall("session_rotate", keys: [Self.key], arguments: [
            Self.writeID(3), RedisArgument(bytes: almost), Self.digest(0xCC), "0", "0",
        ])
        #expect(rotation == .null)
        let delete = try await client.fcall("session_delete", keys: [Self.key, Self.tombstone], arguments: [
            Self.writeID(4), "60000", RedisArgument(bytes: almost), "revoke",
        ])
        #expect(delete == .array([.integer(0), .bulkString([]), .integer(0)]))
        #expect(try await Self.version(client) == "1")
        #expect(try await Self.digests(client).current == [UInt8](repeating: 0xAA, count: 16))
        #expect(try await Self.digests(client).previous == [], "never rotated")
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
