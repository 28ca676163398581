import Foundation
import RedisClient
import RedisTestSupport
import Testing

@testable import SessionService

/// Create, read, patch, replace and delete through real HTTP (rotation: ``RotationTests``), on each topology sessiond
/// runs on: one Redis, a Sentinel-watched primary, a Redis Cluster.
@Suite(.sharedBackends) struct SessionLifecycleTests {
    /// How long a session's key outlives its deadline with events on (the default): the sweeper
    /// ends it at its deadline; the key's TTL is only a backstop.
    static let backstop = EventSettings.backstop.milliseconds

    static var timestampPattern: Regex<Substring> { #/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/# }

    /// The `data` object of a session answer, as the bytes sent.
    static func rawData(_ response: HTTPTestResponse) -> String? {
        response.text.components(separatedBy: #""data":"#).dropFirst().first?.components(separatedBy: #","version":"#).first
    }

    static func milliseconds(_ timestamp: Any?) throws -> Int64 {
        let text = try #require(timestamp as? String)
        #expect(text.wholeMatch(of: timestampPattern) != nil, "\(text) is RFC 3339 UTC with milliseconds")
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let date = try #require(formatter.date(from: text))
        return Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// Independent of the code under test: a token is `sds_` and the base64url of the 16-byte id
    /// and the 32-byte secret; the id is the first 16 bytes, in lowercase hex.
    static func expectedID(ofToken token: String) throws -> String {
        try #require(token.hasPrefix("sds_"))
        var base64 = String(token.dropFirst(4)).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        let bytes = try #require(Data(base64Encoded: base64))
        #expect(bytes.count == 48)
        return bytes.prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    @Test(arguments: Topology.allCases) func createReturnsATokenAndTheSessionWithItsId(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let response = try await service.request("POST", "/v1/sessions", json: #"{"user":"alice","data":{"cart":[1,2]},"idle_timeout":600,"absolute_timeout":3600}"#)
        #expect(response.status == 201)
        #expect(response.header("ETag") == "\"1\"")
        #expect(response.header("Content-Type") == "application/json")
        let object = try #require(response.jsonObject)
        let token = try #require(object["token"] as? String)
        #expect(token.wholeMatch(of: #/sds_[A-Za-z0-9_-]{64}/#) != nil)
        let session = try #require(object["session"] as? [String: Any])
        #expect(session["id"] as? String == (try Self.expectedID(ofToken: token)))
        #expect(session["user"] as? String == "alice")
        #expect(session["version"] as? Int == 1)
        #expect(response.text.contains(#""data":{"cart":[1,2]}"#))
        let created = try Self.milliseconds(session["created_at"])
        #expect(try Self.milliseconds(session["last_seen_at"]) == created)
        #expect(try Self.milliseconds(session["expires_at"]) == created + 600_000)
        #expect(try Self.milliseconds(session["absolute_expires_at"]) == created + 3_600_000)
        #expect(abs(created - Int64(Date().timeIntervalSince1970 * 1000)) < 5000)

        // Defaults from configuration, and an empty body is a valid request.
        let bare = try await service.request("POST", "/v1/sessions")
        #expect(bare.status == 201)
        let bareSession = try #require(bare.jsonObject?["session"] as? [String: Any])
        #expect(bareSession["user"] is NSNull)
        #expect(bare.text.contains(#""data":{}"#))
        let bareCreated = try Self.milliseconds(bareSession["created_at"])
        #expect(try Self.milliseconds(bareSession["expires_at"]) == bareCreated + 1800 * 1000)
        #expect(try Self.milliseconds(bareSession["absolute_expires_at"]) == bareCreated + 86400 * 1000)
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func theRedisKeyTTLAgreesWithExpiresAt(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let inspector = backend.inspector()
        let (_, short) = try await service.create(#"{"idle_timeout":100,"absolute_timeout":50}"#)
        let (_, long) = try await service.create(#"{"idle_timeout":100,"absolute_timeout":5000}"#)
        for session in [short, long] {
            let id = try #require(session["id"] as? String)
            let remaining = try #require(try await inspector.send("PTTL", RedisArgument(sessionKey(id))).integer)
            let expected = try Self.milliseconds(session["expires_at"]) + Self.backstop - Int64(Date().timeIntervalSince1970 * 1000)
            #expect(abs(remaining - expected) <= 1000, "PTTL \(remaining) ms vs expires_at + the backstop in \(expected) ms")
        }
        #expect(try Self.milliseconds(short["expires_at"]) == (try Self.milliseconds(short["absolute_expires_at"])))
        await inspector.shutdown()
        await service.stop()
    }

    /// Redis' clock, in milliseconds: what decides whether a touch interval has passed.
    static func redisMilliseconds(_ redis: RedisClient) async throws -> Int64 {
        let time = try #require(try await redis.send("TIME").array?.compactMap { $0.string.flatMap { Int64($0) } })
        return time[0] * 1000 + time[1] / 1000
    }

    /// A new session made with `json` and the answer to `request` on it, made within `window`
    /// milliseconds of the creation by Redis' clock. A machine too busy to make both that soon
    /// proves nothing either way, so the pair is made again with a new session (a bounded number of
    /// times) rather than judged.
    static func requestSoonAfterCreating(
        _ json: String, within window: Int64, _ service: TestService, redis: RedisClient, _ request: (String) async throws -> HTTPTestResponse
    ) async throws -> (token: String, created: [String: Any], response: HTTPTestResponse) {
        for _ in 0..<20 {
            let (token, created) = try await service.create(json)
            let response = try await request(token)
            if try await redisMilliseconds(redis) - (try milliseconds(created["created_at"])) < window {
                return (token, created, response)
            }
        }
        throw TestServerError("in 20 tries no request came within \(window) ms of its session's creation")
    }

    @Test(arguments: Topology.allCases) func readsSlideTheIdleDeadlineOnlyAfterTheTouchInterval(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend) { $0.touchInterval = .seconds(1) }
        let redis = backend.inspector()
        let (token, created, early) = try await Self.requestSoonAfterCreating(#"{"idle_timeout":30}"#, within: 1000, service, redis: redis) {
            try await service.get($0)
        }
        await redis.shutdown()
        let createdSeen = try Self.milliseconds(created["last_seen_at"])

        #expect(early.status == 200)
        #expect(early.header("ETag") == "\"1\"")
        #expect(try Self.milliseconds(early.jsonObject?["last_seen_at"]) == createdSeen, "no slide within the touch interval")

        var slidTo: Int64 = 0
        #expect(await eventually {
            let response = try await service.get(token)
            slidTo = try Self.milliseconds(response.jsonObject?["last_seen_at"])
            return slidTo >= createdSeen + 1000
        })
        let after = try #require(try await service.get(token, query: "?touch=false").jsonObject)
        #expect(try Self.milliseconds(after["last_seen_at"]) == slidTo)
        #expect(try Self.milliseconds(after["expires_at"]) == slidTo + 30_000)

        // touch=false never slides, however long it has been.
        #expect(await eventually { Int64(Date().timeIntervalSince1970 * 1000) > slidTo + 1100 })
        let untouched = try #require(try await service.get(token, query: "?touch=false").jsonObject)
        #expect(try Self.milliseconds(untouched["last_seen_at"]) == slidTo)
        #expect(try await service.get(token, query: "?touch=maybe").errorCode == "invalid_request")
        await service.stop()
    }

    /// A write slides the idle deadline as a read does: at most once per touch interval, so a busy
    /// session costs Redis (and its replicas) one PEXPIREAT per interval, not one per write.
    @Test(arguments: Topology.allCases) func writesSlideTheIdleDeadlineOnlyAfterTheTouchInterval(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend) { $0.touchInterval = .seconds(1) }
        let redis = backend.inspector()
        let (token, created, early) = try await Self.requestSoonAfterCreating(#"{"idle_timeout":30}"#, within: 1000, service, redis: redis) {
            try await service.patch($0, #"{"a":1}"#)
        }
        let key = RedisArgument(sessionKey(try #require(created["id"] as? String)))
        let createdSeen = try Self.milliseconds(created["last_seen_at"])
        let createdExpiry = try Self.milliseconds(created["expires_at"])

        #expect(early.status == 200)
        let earlyBody = try #require(early.jsonObject)
        #expect(earlyBody["version"] as? Int == 2, "the write is applied")
        #expect(try Self.milliseconds(earlyBody["last_seen_at"]) == createdSeen, "no slide within the touch interval")
        #expect(try Self.milliseconds(earlyBody["expires_at"]) == createdExpiry)
        #expect(try await redis.send("PEXPIRETIME", key).integer == createdExpiry + Self.backstop)

        var slid: [String: Any] = [:]
        #expect(await eventually {
            slid = try #require(try await service.patch(token, #"{"a":2}"#).jsonObject)
            return try Self.milliseconds(slid["last_seen_at"]) >= createdSeen + 1000
        })
        let slidTo = try Self.milliseconds(slid["last_seen_at"])
        #expect(try Self.milliseconds(slid["expires_at"]) == slidTo + 30_000)
        #expect(try await redis.send("PEXPIRETIME", key).integer == slidTo + 30_000 + Self.backstop, "the key moves with the deadline")
        let read = try #require(try await service.get(token, query: "?touch=false").jsonObject)
        #expect(read["data"] as? [String: Int] == ["a": 2])
        await redis.shutdown()
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func withATouchIntervalOfZeroEveryWriteSlides(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend) { $0.touchInterval = .seconds(0) }
        let (token, created) = try await service.create(#"{"idle_timeout":30}"#)
        let createdSeen = try Self.milliseconds(created["last_seen_at"])
        var seen = createdSeen
        for value in 1...3 {
            let earlier = seen
            #expect(await eventually { Int64(Date().timeIntervalSince1970 * 1000) > earlier + 20 })
            let patched = try #require(try await service.patch(token, #"{"a":\#(value)}"#).jsonObject)
            seen = try Self.milliseconds(patched["last_seen_at"])
            #expect(seen > earlier, "write \(value) slid the deadline")
            #expect(try Self.milliseconds(patched["expires_at"]) == seen + 30_000)
        }
        await service.stop()
    }

    /// A read is a plain HGETALL and sessiond compares the session's deadline with its estimate of
    /// Redis' clock (the key itself outlives the deadline by the backstop, until the sweeper ends
    /// it): the session is found before `expires_at` and nothing is found at or after it. Read in a
    /// tight loop across the deadline, each answer judged by Redis' clock: a 200 by the clock taken
    /// just before its request was sent, a 404 by the clock taken just after it came back (a
    /// loaded machine may hold a request up for long; that moves neither judgement).
    @Test(arguments: Topology.allCases) func aReadAtTheDeadlineFindsNothing(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let redis = backend.inspector()
        defer { Task { await redis.shutdown() } }
        func redisNow() async throws -> Int64 { try await Self.redisMilliseconds(redis) }

        /// One session read in a tight loop across its deadline: whether it was found, then gone
        /// (`false` when the machine was too busy to read it even once before its deadline: then
        /// nothing can be judged).
        func readAcrossTheDeadline() async throws -> Bool {
            // Idle 3 s; a write within the touch interval does not slide it.
            let (token, created) = try await service.create(#"{"idle_timeout":3}"#)
            let key = sessionKey(try #require(created["id"] as? String))
            var deadline = try Self.milliseconds(created["expires_at"])
            let createdExpiry = try await redis.send("PEXPIRETIME", RedisArgument(key)).integer
            let goneAlready = createdExpiry == -2 ? try await redisNow() >= deadline : false
            #expect(createdExpiry == deadline + Self.backstop || goneAlready, "the key's backstop follows the session's deadline")
            let patch = try await service.patch(token, #"{"a":1}"#)
            guard patch.status == 200 else {
                #expect(try await redisNow() >= deadline, "the write found no session before its deadline")
                return false
            }
            deadline = try Self.milliseconds(patch.jsonObject?["expires_at"])
            let expiry = try await redis.send("PEXPIRETIME", RedisArgument(key)).integer
            guard expiry != -2 else {  // the key is gone already: only a busy machine's lateness, or a bug
                #expect(try await redisNow() >= deadline, "the key was gone before its deadline")
                return false
            }
            #expect(expiry == deadline + Self.backstop, "still after a write")
            var found = false
            let giveUp = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < giveUp {
                let before = try await redisNow()
                switch try await service.get(token).status {
                case 200:
                    #expect(before < deadline, "found although Redis' clock read \(before) before the request, at or past the deadline \(deadline)")
                    found = true
                case 404:
                    let after = try await redisNow()
                    #expect(after >= deadline, "gone although Redis' clock read \(after) after the answer, \(deadline - after) ms before the deadline \(deadline)")
                    return found
                case let status:
                    Issue.record("unexpected status \(status)")
                    return false
                }
            }
            Issue.record("still found 10 s after its deadline")
            return false
        }

        var judged = false
        for _ in 0..<10 where !judged {
            judged = try await readAcrossTheDeadline()
        }
        #expect(judged, "in 10 tries no session was read before its deadline")
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func patchSetsAndDeletesOnlyTheNamedAttributes(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let (token, _) = try await service.create(#"{"data":{"keep":"me","drop":1,"change":true}}"#)
        let response = try await service.patch(token, #"{"change":false,"drop":null,"add":{"nested":[null]}}"#)
        #expect(response.status == 200)
        #expect(response.header("ETag") == "\"2\"")
        let data = try #require(response.jsonObject?["data"] as? [String: Any])
        #expect(data["keep"] as? String == "me")
        #expect(data["change"] as? Bool == false)
        #expect(data["drop"] == nil)
        #expect(response.text.contains(#""add":{"nested":[null]}"#))
        #expect(response.jsonObject?["version"] as? Int == 2)
        let read = try await service.get(token)
        #expect(read.jsonObject?["version"] as? Int == 2)
        #expect((read.jsonObject?["data"] as? [String: Any])?.keys.sorted() == ["add", "change", "keep"])
        #expect(Self.rawData(read) == Self.rawData(response), "the write's answer is the session as stored, attribute order included")
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func putReplacesTheWholeDataObject(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let (token, _) = try await service.create(#"{"data":{"a":1,"b":2}}"#)
        let response = try await service.request("PUT", "/v1/session/data", headers: [("X-Session-Token", token)], json: #"{"c":3,"d":null}"#)
        #expect(response.status == 200)
        #expect(response.text.contains(#""data":{"c":3,"d":null}"#))
        #expect(response.jsonObject?["version"] as? Int == 2)
        let again = try await service.request("PUT", "/v1/session/data", headers: [("X-Session-Token", token)], json: #"{"e":5,"c":4}"#)
        #expect((again.jsonObject?["data"] as? [String: Int]) == ["c": 4, "e": 5])
        #expect(Self.rawData(try await service.get(token)) == Self.rawData(again), "the answer is the session as stored")
        let cleared = try await service.request("PUT", "/v1/session/data", headers: [("X-Session-Token", token), ("If-Match", "\"3\"")], json: "{}")
        #expect(cleared.text.contains(#""data":{}"#))
        #expect(cleared.header("ETag") == "\"4\"")
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func valuesComeBackExactlyAsSent(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let values = [
            #""big":12345678901234567890"#, #""decimal":1.10"#, #""exponent":-0.5e+10"#,
            #""unicode":"żółć 🦊 \u00e9 \ud83d\ude00""#, #""escapes":"line\nbreak \"quoted\" \\ \/""#,
            #""deep":{"a":[{"b":[[],{}]},true,false,null]}"#, #""empty":"""#, #"" key with spaces ":0"#,
        ]
        let (token, _) = try await service.create("{\"data\":{\(values[0...3].joined(separator: ","))}}")
        let patched = try await service.patch(token, "{\(values[4...].joined(separator: ","))}")
        let read = try await service.get(token)
        for value in values {
            #expect(read.text.contains(value), "\(value) round-trips byte for byte")
        }
        #expect(patched.text == read.text)
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func deleteEndsTheSessionAndIsIdempotent(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let inspector = backend.inspector()
        let (token, session) = try await service.create(#"{"user":"dave","data":{"x":1}}"#)
        let id = try #require(session["id"] as? String)
        #expect(try await service.request("DELETE", "/v1/session", headers: [("X-Session-Token", token)]).status == 204)
        #expect(try await service.request("DELETE", "/v1/session", headers: [("X-Session-Token", token)]).status == 204)
        // No write or touch brings it back.
        #expect(try await service.get(token).errorCode == "session_not_found")
        #expect(try await service.patch(token, #"{"x":2}"#).errorCode == "session_not_found")
        #expect(try await service.request("PUT", "/v1/session/data", headers: [("X-Session-Token", token)], json: "{}").status == 404)
        #expect(try await service.request("POST", "/v1/session/rotate", headers: [("X-Session-Token", token)]).status == 404)
        #expect(try await inspector.send("EXISTS", RedisArgument(sessionKey(id))) == .integer(0))
        #expect(try await inspector.send("ZSCORE", "sd:u:{dave}", RedisArgument(id)) == .null)
        await inspector.shutdown()
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func adminReadNeverSlidesAndAdminRevokeEndsTheSession(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend) { $0.touchInterval = .seconds(0) }
        let (token, session) = try await service.create()
        let id = try #require(session["id"] as? String)
        #expect(await eventually { Int64(Date().timeIntervalSince1970 * 1000) > (try Self.milliseconds(session["last_seen_at"])) + 20 })
        let admin = try await service.request("GET", "/v1/sessions/\(id)")
        #expect(admin.status == 200)
        #expect(admin.header("ETag") == "\"1\"")
        #expect(admin.jsonObject?["last_seen_at"] as? String == session["last_seen_at"] as? String)
        #expect(try await service.request("GET", "/v1/sessions/not-an-id").errorCode == "session_not_found")
        #expect(try await service.request("GET", "/v1/sessions/\(String(repeating: "0", count: 32))").errorCode == "session_not_found")
        #expect(try await service.request("DELETE", "/v1/sessions/\(id)").status == 204)
        #expect(try await service.request("DELETE", "/v1/sessions/\(id)").status == 204)
        #expect(try await service.get(token).status == 404)
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func aSessionExpiresAfterItsIdleTimeout(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let inspector = backend.inspector()
        // Before the create: its answer can arrive late on a loaded machine, while the idle clock
        // started when Redis ran it.
        let started = ContinuousClock.now
        let (token, session, first) = try await Self.requestSoonAfterCreating(#"{"idle_timeout":1,"data":{"a":1}}"#, within: 1000, service, redis: inspector) {
            try await service.get($0, query: "?touch=false")
        }
        let id = try #require(session["id"] as? String)
        #expect(first.status == 200, "read within its idle timeout")
        #expect(await eventually { try await service.get(token, query: "?touch=false").status == 404 })
        #expect(ContinuousClock.now - started >= .milliseconds(900))
        #expect(try await service.patch(token, #"{"a":2}"#).status == 404, "a write never re-creates an expired session")
        #expect(await eventually { try await inspector.send("EXISTS", RedisArgument(sessionKey(id))) == .integer(0) }, "the sweeper ended it")
        await inspector.shutdown()
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func activityCannotExtendASessionPastItsAbsoluteDeadline(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend) { $0.touchInterval = .seconds(0) }
        let redis = backend.inspector()
        let (token, session, first) = try await Self.requestSoonAfterCreating(#"{"idle_timeout":60,"absolute_timeout":2}"#, within: 2000, service, redis: redis) {
            try await service.patch($0, #"{"tick":0}"#)
        }
        await redis.shutdown()
        let absolute = try Self.milliseconds(session["absolute_expires_at"])
        #expect(first.status == 200, "written before its absolute deadline")
        var lastExpiry = try Self.milliseconds(first.jsonObject?["expires_at"])
        // Keep the session busy; it must still end at its absolute deadline.
        let ended = await eventually(timeout: .seconds(6), interval: .milliseconds(100)) {
            let response = try await service.patch(token, #"{"tick":1}"#)
            if response.status == 200 {
                lastExpiry = try Self.milliseconds(response.jsonObject?["expires_at"])
                return false
            }
            return response.status == 404
        }
        #expect(ended)
        #expect(lastExpiry == absolute, "expires_at is capped by the absolute deadline")
        #expect(Int64(Date().timeIntervalSince1970 * 1000) >= absolute - 50)
        await service.stop()
    }
}
