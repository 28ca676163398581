import Foundation
import RedisClient
import RedisTestSupport
import Testing

/// The per-user index: listing, revoke-all across instances, the per-user cap, bounded growth.
@Suite(.sharedBackends) struct UserSessionsTests {
    static func ids(_ response: HTTPTestResponse) -> [String] {
        (response.jsonObject?["sessions"] as? [[String: Any]])?.compactMap { $0["id"] as? String } ?? []
    }

    @Test(arguments: Topology.allCases) func listsAUsersLiveSessionsOldestFirstWithoutData(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        var created: [String] = []
        for index in 0..<4 {
            let (_, session) = try await service.create("{\"user\":\"frank\",\"data\":{\"n\":\(index)}}")
            created.append(try #require(session["id"] as? String))
        }
        _ = try await service.create(#"{"user":"someone else"}"#)
        let response = try await service.request("GET", "/v1/users/frank/sessions")
        #expect(response.status == 200)
        #expect(Self.ids(response) == created)
        #expect(!response.text.contains("\"data\""))
        let entries = try #require(response.jsonObject?["sessions"] as? [[String: Any]])
        #expect(entries.allSatisfy { $0["user"] as? String == "frank" && $0["version"] as? Int == 1 })
        #expect(Self.ids(try await service.request("GET", "/v1/users/nobody/sessions")) == [])
        // Any UTF-8 user name, percent-encoded in the path.
        _ = try await service.create(#"{"user":"zoë / ops"}"#)
        #expect(Self.ids(try await service.request("GET", "/v1/users/zo%C3%AB%20%2F%20ops/sessions")).count == 1)
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func revokingAllOfAUsersSessionsTakesEffectOnEveryInstance(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let first = try await TestService.start(on: backend)
        let second = try await TestService.start(on: backend)
        var tokens: [String] = []
        for _ in 0..<3 { tokens.append(try await first.create(#"{"user":"grace"}"#).token) }
        let other = try await second.create(#"{"user":"heidi"}"#).token
        for token in tokens { #expect(try await second.get(token).status == 200) }

        let revoked = try await second.request("DELETE", "/v1/users/grace/sessions")
        #expect(revoked.status == 200)
        #expect(revoked.jsonObject?["revoked"] as? Int == 3)
        for token in tokens {
            #expect(try await first.get(token).status == 404)
            #expect(try await second.get(token).status == 404)
        }
        #expect(try await first.get(other).status == 200)
        #expect(Self.ids(try await first.request("GET", "/v1/users/grace/sessions")) == [])
        #expect(try await first.request("DELETE", "/v1/users/grace/sessions").jsonObject?["revoked"] as? Int == 0)
        await first.stop()
        await second.stop()
    }

    @Test(arguments: Topology.allCases) func thePerUserCapRevokesTheOldestSession(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend) { $0.maxSessionsPerUser = 3 }
        var sessions: [(token: String, id: String)] = []
        for _ in 0..<5 {
            let (token, session) = try await service.create(#"{"user":"ivan"}"#)
            sessions.append((token, try #require(session["id"] as? String)))
        }
        #expect(try await service.get(sessions[0].token).status == 404)
        #expect(try await service.get(sessions[1].token).status == 404)
        for session in sessions[2...] { #expect(try await service.get(session.token).status == 200) }
        #expect(Self.ids(try await service.request("GET", "/v1/users/ivan/sessions")) == sessions[2...].map(\.id))
        // Sessions without a user are never capped.
        for _ in 0..<5 { _ = try await service.create() }
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func theUserIndexDoesNotGrowAsSessionsExpire(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let inspector = backend.inspector()
        // Churn: rounds of short-lived sessions. Entries past their absolute deadline are dropped
        // whenever the index is written (one second after the deadline), so it holds about two rounds.
        var largest: Int64 = 0
        for round in 0..<6 {
            var last = ""
            for _ in 0..<20 { last = try await service.create(#"{"user":"judy","absolute_timeout":1}"#).token }
            largest = max(largest, try await inspector.send("ZCARD", "sd:u:{judy}").integer ?? 0)
            #expect(await eventually { try await service.get(last).status == 404 }, "round \(round) expired")
        }
        #expect(largest <= 60, "the index held \(largest) entries after 120 sessions were created")
        // Idle-expired sessions (absolute deadline far away) are dropped when the user's sessions are listed.
        var idleTokens: [String] = []
        for _ in 0..<10 { idleTokens.append(try await service.create(#"{"user":"kim","idle_timeout":1}"#).token) }
        #expect(try await inspector.send("ZCARD", "sd:u:{kim}") == .integer(10))
        #expect(await eventually { try await service.get(idleTokens.last!, query: "?touch=false").status == 404 })
        #expect(UserSessionsTests.ids(try await service.request("GET", "/v1/users/kim/sessions")) == [])
        #expect(try await inspector.send("ZCARD", "sd:u:{kim}") == .integer(0))
        // And an index whose sessions are all past their absolute deadline expires by itself.
        #expect(await eventually { try await inspector.send("EXISTS", "sd:u:{judy}") == .integer(0) })
        await inspector.shutdown()
        await service.stop()
    }

    /// Two applications on one Redis, each with its own key prefix: neither sees, lists or revokes
    /// the other's sessions, and every key each writes starts with its prefix.
    @Test(arguments: Topology.allCases) func twoKeyPrefixesOnOneRedisNeverSeeEachOthersSessions(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let first = try await TestService.start(on: backend) { $0.keyPrefix = "app1:" }
        let second = try await TestService.start(on: backend) { $0.keyPrefix = "app2:" }
        let user = "kim-\(topology)"
        let (firstToken, firstSession) = try await first.create(#"{"user":"\#(user)","data":{"app":1}}"#)
        let (secondToken, _) = try await second.create(#"{"user":"\#(user)","data":{"app":2}}"#)
        let firstID = try #require(firstSession["id"] as? String)

        #expect(try await second.get(firstToken).status == 404, "a token of one prefix is unknown under the other")
        #expect(try await first.get(secondToken).status == 404)
        #expect(try await second.request("GET", "/v1/sessions/\(firstID)").status == 404)
        let listed = try await second.request("GET", "/v1/users/\(user)/sessions").jsonObject?["sessions"] as? [[String: Any]]
        #expect(listed?.count == 1, "each lists only its own sessions of the user")
        #expect(try await second.request("DELETE", "/v1/users/\(user)/sessions").jsonObject?["revoked"] as? Int == 1)
        #expect(try await first.get(firstToken).status == 200, "revoking all under one prefix leaves the other's")

        // Every key sessiond wrote for this user's sessions starts with its prefix.
        let inspector = backend.inspector()
        let keys = [
            sessionKey(firstID, prefix: "app1:"), "app1:u:{\(user)}", sessionKey(firstID), sessionKey(firstID, prefix: "app2:"),
        ]
        var exists: [Bool] = []
        for key in keys { exists.append(try await inspector.send("EXISTS", RedisArgument(key)) == .integer(1)) }
        #expect(exists == [true, true, false, false])
        await inspector.shutdown()
        await first.stop()
        await second.stop()
    }
}
