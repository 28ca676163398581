import Foundation
import Logging
import RedisClient
import RedisTestSupport
import Synchronization
import Testing

@testable import SessionService

/// The versioned storage layout on real servers: what a fresh Redis gets, the deadline index kept
/// exact, the fleet's agreement (announcements, moving on by itself, `--finalize-layout`, refusing
/// an instance too old), layout-1 sessions moved on use, and unused libraries removed. (The mixed
/// fleet with the landed build itself is scripts/upgrade-test.sh; the decisions alone are
/// FleetLayoutTests.)
@Suite struct StorageLayoutTests {
    /// What a version from before layout numbers leaves on a server: a library named `sessiond`
    /// (c10d6aa; scripts/upgrade-test.sh runs that very version), `sessiond_v2` or `sessiond_v3`
    /// (its successors before layout numbers): the last here.
    static let legacyLibrary = "#!lua name=sessiond_v3\nredis.register_function('sessiond_v3_legacy_marker', function() return 1 end)"

    static func layout(_ service: TestService) async throws -> (active: Int, newest: Int)? {
        let response = try await service.request("GET", "/readyz")
        guard response.status == 200, let layout = response.jsonObject?["layout"] as? [String: Any],
            let active = layout["active"] as? Int, let newest = layout["newest_supported"] as? Int
        else { return nil }
        return (active, newest)
    }

    static func libraries(_ inspector: RedisClient) async throws -> [String] {
        try await inspector.sendToEveryPrimary(["FUNCTION", "LIST"]).flatMap { FleetRegistry.libraryNames(in: $0) }
    }

    static func deadlineScore(_ inspector: RedisClient, id: String) async throws -> Int64? {
        let sessionID = try #require(SessionID(parsing: id))
        let keys = SessionKeys(prefix: "sd:")
        let score = try await inspector.send(["ZSCORE", RedisArgument(keys.deadlines(sessionID, in: .bucketed)!), RedisArgument(bytes: sessionID.bytes)])
        return score.string.flatMap { Int64($0) }
    }

    /// `expires_at` (RFC 3339 with milliseconds) in whole seconds rounded up, as the index scores it.
    static func expectedScore(_ session: [String: Any]) throws -> Int64 {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let text = try #require(session["expires_at"] as? String)
        let date = try #require(formatter.date(from: text))
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        return (milliseconds + 999) / 1000
    }

    @Test(arguments: [Topology.single, .cluster]) func aFreshRedisGetsTheNewestLayoutAndTheDeadlineIndexStaysExact(_ topology: Topology) async throws {
        let backend = try await Backend.start(topology)
        let service = try await TestService.start(on: backend) { $0.touchInterval = .zero }
        let inspector = backend.inspector()
        #expect(try await Self.layout(service).map { [$0.active, $0.newest] } == [3, 3])

        let (token, created) = try await service.create(#"{"user":"ivy","data":{"a":1}}"#)
        let id = try #require(created["id"] as? String)
        #expect(try await inspector.send("EXISTS", RedisArgument(sessionKey(id))) == .integer(1))
        #expect(try await inspector.send("EXISTS", RedisArgument("sd:s:{\(id)}")) == .integer(0), "nothing in layout 1")
        #expect(try await Self.deadlineScore(inspector, id: id) == Self.expectedScore(created), "create")

        // Every slide moves the entry (a touch interval of 0: every read and write slides).
        try await Task.sleep(for: .milliseconds(1100))  // the next whole second, so that a slide changes the score
        let patched = try #require(try await service.patch(token, #"{"a":2}"#).jsonObject)
        #expect(try await Self.deadlineScore(inspector, id: id) == Self.expectedScore(patched), "write")
        try await Task.sleep(for: .milliseconds(1100))
        let read = try #require(try await service.get(token).jsonObject)
        #expect(try await Self.deadlineScore(inspector, id: id) == Self.expectedScore(read), "touch")
        try await Task.sleep(for: .milliseconds(1100))
        let rotation = try await service.request("POST", "/v1/session/rotate", headers: [("X-Session-Token", token)], json: "{}")
        let rotated = try #require(rotation.jsonObject?["session"] as? [String: Any])
        #expect(try await Self.deadlineScore(inspector, id: id) == Self.expectedScore(rotated), "rotate")
        let newToken = try #require(rotation.jsonObject?["token"] as? String)

        // Every end removes it.
        #expect(try await service.request("DELETE", "/v1/session", headers: [("X-Session-Token", newToken)]).status == 204)
        #expect(try await Self.deadlineScore(inspector, id: id) == nil, "logout")
        let (_, other) = try await service.create(#"{"user":"ivy"}"#)
        let otherID = try #require(other["id"] as? String)
        #expect(try await service.request("DELETE", "/v1/users/ivy/sessions").status == 200)
        #expect(try await Self.deadlineScore(inspector, id: otherID) == nil, "revoke-all")
        let (stolen, third) = try await service.create("{}")
        let thirdID = try #require(third["id"] as? String)
        let rotatedAway = try await service.request("POST", "/v1/session/rotate", headers: [("X-Session-Token", stolen)], json: #"{"grace_seconds":0}"#)
        #expect(rotatedAway.status == 200)
        #expect(try await service.get(stolen).status == 404, "the rotated-away token, reused: the session is revoked")
        #expect(try await Self.deadlineScore(inspector, id: thirdID) == nil, "a reuse that revokes")
        await inspector.shutdown()
        await service.stop()
    }

    /// The transition from the landed layout: a Redis a version from before layout numbers used
    /// stays at layout 1 (new instances write what old ones read) until `--finalize-layout`; then
    /// layout 1's sessions are moved on use, read, patched, rotated, listed and revoked, and the old
    /// library is removed.
    @Test(arguments: [Topology.single, .cluster]) func layoutOneSessionsSurviveFinalizationAndMoveOnUse(_ topology: Topology) async throws {
        let backend = try await Backend.start(topology)
        let inspector = backend.inspector()
        _ = try await inspector.sendToEveryPrimary(["FUNCTION", "LOAD", RedisArgument(Self.legacyLibrary)])
        var configuration = SessionServiceConfiguration()
        backend.configure(&configuration)
        let service = try await TestService.start(on: backend)
        #expect(try await Self.layout(service).map { [$0.active, $0.newest] } == [1, 3], "a legacy library was found: layout 1")

        var tokens: [String] = []
        var ids: [String] = []
        for index in 0..<5 {
            let (token, session) = try await service.create("{\"user\":\"judy\",\"data\":{\"n\":\(index)}}")
            tokens.append(token)
            ids.append(try #require(session["id"] as? String))
        }
        for id in ids {
            #expect(try await inspector.send("EXISTS", RedisArgument("sd:s:{\(id)}")) == .integer(1), "written in layout 1")
            #expect(try await inspector.send("EXISTS", RedisArgument(sessionKey(id))) == .integer(0))
        }

        // An announced instance that writes only layout 1 blocks finalization, naming itself.
        _ = try await inspector.send(["HSET", "sd:fleet", "i:old-instance#0001", "1 1 4 99999999999999"])
        await #expect(throws: FleetLayout.FinalizeRefusal.self) {
            try await SessionServiceApplication.finalizeLayout(configuration: configuration, logger: Logger(label: "finalize"))
        }
        _ = try await inspector.send(["HDEL", "sd:fleet", "i:old-instance#0001"])
        #expect(try await SessionServiceApplication.finalizeLayout(configuration: configuration, logger: Logger(label: "finalize")) == 3)
        #expect(try await SessionServiceApplication.finalizeLayout(configuration: configuration, logger: Logger(label: "finalize")) == 3, "at once when final")
        #expect(await eventually(timeout: .seconds(15)) { try await Self.layout(service)?.active == 3 }, "the running instance follows")

        // Read, patch, rotate, list, revoke: each finds its layout-1 session and moves it.
        let read = try await service.get(tokens[0])
        #expect(read.status == 200 && (read.jsonObject?["data"] as? [String: Any])?["n"] as? Int == 0)
        #expect(try await service.patch(tokens[1], #"{"m":true}"#).status == 200)
        let rotation = try await service.request("POST", "/v1/session/rotate", headers: [("X-Session-Token", tokens[2])], json: "{}")
        #expect(rotation.status == 200)
        for moved in ids[0...2] {
            #expect(try await inspector.send("EXISTS", RedisArgument("sd:s:{\(moved)}")) == .integer(0), "moved out of layout 1")
            #expect(try await inspector.send("EXISTS", RedisArgument(sessionKey(moved))) == .integer(1), "into the newest layout")
            #expect(try await Self.deadlineScore(inspector, id: moved) != nil, "with its deadline indexed")
        }
        #expect(try await service.get(tokens[1]).jsonObject.map { ($0["data"] as? [String: Any])?["m"] as? Bool } == true, "the patch kept")
        let newToken = try #require(rotation.jsonObject?["token"] as? String)
        #expect(try await service.get(newToken).status == 200)
        let listed = try await service.request("GET", "/v1/users/judy/sessions").jsonObject?["sessions"] as? [[String: Any]]
        #expect(Set(listed?.compactMap { $0["id"] as? String } ?? []) == Set(ids), "listing finds both layouts")
        #expect(try await service.request("DELETE", "/v1/sessions/\(ids[3])").status == 204)
        #expect(try await service.get(tokens[3]).status == 404)
        #expect(try await service.request("DELETE", "/v1/users/judy/sessions").jsonObject?["revoked"] as? Int == 4)
        for token in [tokens[0], tokens[1], newToken, tokens[4]] { #expect(try await service.get(token).status == 404) }

        // New sessions go to the newest layout, and the library of the version from before is removed.
        let (_, fresh) = try await service.create("{}")
        #expect(try await inspector.send("EXISTS", RedisArgument(sessionKey(try #require(fresh["id"] as? String)))) == .integer(1))
        #expect(await eventually(timeout: .seconds(15)) { !(try await Self.libraries(inspector)).contains("sessiond_v3") })
        #expect(try await Self.libraries(inspector).contains("sessiond_v5"))
        await inspector.shutdown()
        await service.stop()
    }

    /// The fleet moves on by itself: while an announced instance writes only layout 1, layout 1 stays
    /// active; once its announcement lapses (it is gone), the newest layout becomes active without a step.
    @Test func theFleetMovesOnWhenTheLastOlderInstanceIsGone() async throws {
        let redis = try await RedisServer.start()
        let inspector = Backend.single(redis).inspector()
        let time = try #require(try await inspector.send("TIME").array?.first?.string.flatMap { Int64($0) })
        _ = try await inspector.send(["HSET", "sd:fleet", "active", "1", "i:old#0001", RedisArgument("1 1 4 \((time + 3) * 1000)")])
        let service = try await TestService.start(redis: redis)
        #expect(try await Self.layout(service)?.active == 1)
        let (token, created) = try await service.create("{}")
        let id = try #require(created["id"] as? String)
        #expect(try await inspector.send("EXISTS", RedisArgument("sd:s:{\(id)}")) == .integer(1), "written for the old instance")
        #expect(await eventually(timeout: .seconds(15)) { try await Self.layout(service)?.active == 3 })
        #expect(try await service.get(token).status == 200)
        #expect(try await inspector.send("EXISTS", RedisArgument(sessionKey(id))) == .integer(1), "moved when used")
        await inspector.shutdown()
        await service.stop()
    }

    /// After finalization an instance that cannot write the active layout refuses to start, naming
    /// both versions, and never listens.
    @Test func anInstanceTooOldForTheActiveLayoutRefusesToStart() async throws {
        let redis = try await RedisServer.start()
        let inspector = Backend.single(redis).inspector()
        _ = try await inspector.send(["HSET", "sd:fleet", "active", "4"])
        var configuration = SessionServiceConfiguration()
        configuration.port = 0
        configuration.redisURL = redis.url
        let listened = Mutex(false)
        let application = try SessionServiceApplication.build(configuration: configuration, logger: Logger(label: "too-old")) { _ in
            listened.withLock { $0 = true }
        }
        let error = await #expect(throws: LayoutRefusal.self) { try await application.runService(gracefulShutdownSignals: []) }
        #expect(error?.message.contains("active storage layout is 4") == true && error?.message.contains("up to 3") == true)
        #expect(listened.withLock { $0 } == false)
        #expect(try await inspector.send(["HGET", "sd:fleet", "active"]).string == "4", "the fleet is left as it was")
        await inspector.shutdown()
    }
}
