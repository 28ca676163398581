import RedisClient
import RedisTestSupport
import Testing

@testable import SessionService

/// The session functions called twice with one write id, as a retry after a lost reply does: the
/// repeat answers as the first application did and changes nothing. Each is called as sessiond
/// calls it: in a `MULTI` block with an `HGETALL` of the session after it. Real Redis, no HTTP.
@Suite struct WriteIDTests {
    static let id = SessionID(parsing: "00112233445566778899aabbccddeeff")!
    static let keys = SessionKeys(prefix: "sd:")
    /// The layout a fresh Redis gets: every test here runs there (the storage-layout suite runs
    /// the same functions in layout 1).
    static let layout = SessionLayout.newest
    static let key = RedisArgument(keys.session(id, in: layout))
    static let tombstone = RedisArgument(keys.tombstone(id, in: layout))

    static func writeID(_ byte: UInt8) -> WriteID { WriteID(bytes: [UInt8](repeating: byte, count: 8)) }
    /// A secret digest: 16 bytes, as `SessionToken` makes them.
    static func digest(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 16) }
    static func holder(_ byte: UInt8) -> SessionCall.Holder { .init(secretDigest: digest(byte), onReuse: .revoke) }

    static func client(_ redis: RedisServer) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: redis.url)
        // Generous: the suite's other tests load both cores, and no test here times a connect or
        // a command.
        configuration.connectTimeout = .seconds(10)
        configuration.commandTimeout = .seconds(10)
        return RedisClient.running(configuration: configuration, functionLibraries: [SessionFunctions.library])
    }

    /// The function's result and the session after it, as sessiond reads them.
    static func call(_ client: RedisClient, _ call: SessionCall) async throws -> (result: RESPValue, read: RESPValue) {
        try await client.fcall(call.function, keys: call.keys(keys, layout: layout), arguments: call.arguments(in: layout), then: ["HGETALL", key])
    }

    /// The function's result alone.
    static func result(_ client: RedisClient, _ call: SessionCall) async throws -> RESPValue {
        try await client.fcall(call.function, keys: call.keys(keys, layout: layout), arguments: call.arguments(in: layout))
    }

    static func create(_ client: RedisClient, writeID: WriteID) async throws -> (result: RESPValue, read: RESPValue) {
        try await call(client, .create(
            id, writeID, user: "alice", idleTimeout: .seconds(600), absoluteTimeout: .seconds(3600), secretDigest: digest(0xAA),
            device: nil, data: [Session.Attribute(name: "a", raw: Array("1".utf8))]
        ))
    }

    static let limits = SessionLimits(maxDataBytes: 1 << 20, maxAttributes: 1000, maxNameBytes: 128)

    static func patch(_ client: RedisClient, writeID: WriteID, _ value: String) async throws -> (result: RESPValue, read: RESPValue) {
        try await call(client, .write(
            id, writeID, holder(0xAA), ifMatch: nil, mode: .patch, slide: .after(.zero), clockEstimate: 0, limits: limits,
            attributes: [Session.Attribute(name: "a", raw: Array(value.utf8))]
        ))
    }

    static func delete(_ client: RedisClient, writeID: WriteID, holder: SessionCall.Holder? = nil) async throws -> RESPValue {
        try await result(client, .delete(id, writeID, holder, tombstoneRetention: .seconds(60), reason: .logout))
    }

    static func rotate(_ client: RedisClient, writeID: WriteID, from old: UInt8, to new: UInt8) async throws -> (result: RESPValue, read: RESPValue) {
        try await call(client, .rotate(id, writeID, holder(old), newSecretDigest: digest(new), grace: .zero, reauthenticated: false))
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
        let first = try await Self.delete(client, writeID: Self.writeID(2))
        let repeated = try await Self.delete(client, writeID: Self.writeID(2))
        let other = try await Self.delete(client, writeID: Self.writeID(3))
        #expect(first == .array([.integer(1), .bulkString(Array("alice".utf8))]))
        #expect(repeated == first)
        #expect(other == .null, "another delete finds nothing")
        let remaining = try #require(try await client.send("PTTL", Self.tombstone).integer)
        #expect(remaining > 0 && remaining <= 60000, "the tombstone expires (\(remaining) ms)")
        await client.shutdown()
    }

    @Test func aRepeatedRotationAnswersWithTheSecretItMadeAndTheOldSecretCannotRotateAgain() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        _ = try await Self.create(client, writeID: Self.writeID(1))
        let rotated = try await Self.rotate(client, writeID: Self.writeID(2), from: 0xAA, to: 0xBB)
        let repeated = try await Self.rotate(client, writeID: Self.writeID(2), from: 0xAA, to: 0xBB)
        #expect(rotated.result == .integer(1) && repeated.result == .integer(1))
        #expect(rotated.read == repeated.read, "the repeat answers as the rotation did")
        #expect(try await Self.digests(client).current == Self.digest(0xBB))
        #expect(try await Self.digests(client).previous == Self.digest(0xAA))
        #expect(try await client.send("OBJECT", "ENCODING", Self.key).string == "listpack")
        // Another rotation with the old secret (a new request, after a grace of 0) is a reuse,
        // which under the revoke policy ends the session in that same call.
        let reuse = try await Self.rotate(client, writeID: Self.writeID(3), from: 0xAA, to: 0xCC)
        #expect(reuse.result == .array([.bulkString(Array("reused".utf8)), .integer(1), .bulkString(Array("alice".utf8))]))
        #expect(reuse.read == .array([]), "the reused token's session is gone")
        await client.shutdown()
    }

    @Test func aReusedTokenUnderTheRejectPolicyIsRefusedAndTheSessionStays() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        _ = try await Self.create(client, writeID: Self.writeID(1))
        _ = try await Self.rotate(client, writeID: Self.writeID(2), from: 0xAA, to: 0xBB)
        let rejecting = SessionCall.Holder(secretDigest: Self.digest(0xAA), onReuse: .reject)
        let touch = try await Self.result(client, .touch(Self.id, rejecting, slide: .never))
        #expect(touch == .array([.bulkString(Array("reused".utf8)), .integer(0), .bulkString([])]))
        #expect(try await Self.digests(client).current == Self.digest(0xBB), "the session stays with its current token")
        await client.shutdown()
    }

    @Test func aSecretThatIsNoneOfTheSessionsWritesNothing() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        _ = try await Self.create(client, writeID: Self.writeID(1))
        // Differs from the session's digest only in its last byte: the comparison covers every word.
        var almost = Self.digest(0xAA)
        almost[15] = 0xAB
        let holder = SessionCall.Holder(secretDigest: almost, onReuse: .revoke)
        let write = try await Self.result(client, .write(
            Self.id, Self.writeID(2), holder, ifMatch: nil, mode: .patch, slide: .after(.zero), clockEstimate: 0, limits: Self.limits,
            attributes: [Session.Attribute(name: "a", raw: Array("2".utf8))]
        ))
        #expect(write == .null)
        #expect(try await Self.result(client, .touch(Self.id, holder, slide: .after(.zero))) == .null)
        let rotation = try await Self.result(client, .rotate(
            Self.id, Self.writeID(3), holder, newSecretDigest: Self.digest(0xCC), grace: .zero, reauthenticated: false
        ))
        #expect(rotation == .null)
        #expect(try await Self.delete(client, writeID: Self.writeID(4), holder: holder) == .null)
        #expect(try await Self.version(client) == "1")
        #expect(try await Self.digests(client).current == Self.digest(0xAA))
        #expect(try await Self.digests(client).previous == [], "never rotated")
        await client.shutdown()
    }

    @Test func aWriteIDOfTheWrongLengthIsRefused() async throws {
        let redis = try await RedisServer.start()
        let client = try Self.client(redis)
        let error = await #expect(throws: RedisClientError.self) {
            try await Self.create(client, writeID: WriteID(bytes: Array("short".utf8)))
        }
        #expect(error?.message.contains("write id") == true)
        await client.shutdown()
    }
}
