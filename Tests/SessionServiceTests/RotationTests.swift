import Foundation
import RedisClient
import RedisTestSupport
import Testing

/// Rotation through real HTTP on each topology: the id stays, only the token changes; the grace
/// window; reuse detection under both policies; re-authentication age; one atomic step even while
/// Redis keeps killing connections.
@Suite(.sharedBackends) struct RotationTests {
    static func rotate(_ service: TestService, _ token: String, _ json: String? = nil) async throws -> HTTPTestResponse {
        try await service.request("POST", "/v1/session/rotate", headers: [("X-Session-Token", token)], json: json)
    }

    /// The token and session of a 200 rotation.
    static func rotated(_ response: HTTPTestResponse) throws -> (token: String, session: [String: Any]) {
        #expect(response.status == 200, "\(response.status) \(response.text)")
        let object = try #require(response.jsonObject)
        return (try #require(object["token"] as? String), try #require(object["session"] as? [String: Any]))
    }

    /// The ids the admin list gives for `user`.
    static func listedIDs(_ service: TestService, user: String) async throws -> [String] {
        let response = try await service.request("GET", "/v1/users/\(user)/sessions")
        #expect(response.status == 200, "\(response.text)")
        return UserSessionsTests.ids(response)
    }

    static func reuseCount(_ service: TestService, action: String) async throws -> Int? {
        let metrics = try await service.request("GET", "/metrics").text
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("sessiond_token_reuse_total{action=\"\(action)\"}") }
        return line.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) }
    }

    @Test(arguments: Topology.allCases) func aRotationKeepsTheIdDataAndIndexAndChangesOnlyTheToken(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend) { $0.rotationReuse = .reject }
        let (oldToken, original) = try await service.create(#"{"user":"erin","data":{"cart":[7]}}"#)
        _ = try await service.patch(oldToken, #"{"step":2}"#)
        let (newToken, session) = try Self.rotated(try await Self.rotate(service, oldToken))
        #expect(newToken != oldToken)
        #expect(newToken.hasPrefix("sds_") && newToken.utf8.count == 68)
        #expect(session["id"] as? String == original["id"] as? String)
        #expect(session["id"] as? String == (try SessionLifecycleTests.expectedID(ofToken: newToken)))
        #expect(session["user"] as? String == "erin")
        #expect(session["version"] as? Int == 2)
        #expect(session["created_at"] as? String == original["created_at"] as? String)
        #expect(session["authenticated_at"] as? String == original["authenticated_at"] as? String, "not reauthenticated")
        #expect(session["absolute_expires_at"] as? String == original["absolute_expires_at"] as? String)

        #expect(try await service.get(newToken).text.contains(#""data":{"cart":[7],"step":2}"#))
        // Grace 0 (the default): the old token is dead at once, for reads, writes and rotations.
        #expect(try await service.get(oldToken).errorCode == "session_not_found")
        #expect(try await service.patch(oldToken, #"{"x":1}"#).status == 404)
        #expect(try await Self.rotate(service, oldToken).status == 404)
        #expect(try await service.get(newToken).status == 200, "under the reject policy the session lives on")
        #expect(try await Self.listedIDs(service, user: "erin") == [original["id"] as? String].compactMap { $0 })
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func duringTheGraceWindowTheOldTokenReadsAndWritesButNeverRotatesThenReuseRevokes(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let logs = LogCapture()
        let service = try await TestService.start(on: backend, logs: logs)
        let (oldToken, created) = try await service.create(#"{"user":"gwen","data":{"n":0}}"#)
        let id = try #require(created["id"] as? String)
        // A window far longer than the requests take on any machine, busy or not.
        let started = ContinuousClock.now
        let (newToken, _) = try Self.rotated(try await Self.rotate(service, oldToken, #"{"grace_seconds":60}"#))

        // What requests already in flight with the old token do: 100 at once, reads and writes.
        let statuses = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for index in 0..<100 {
                group.addTask {
                    let response = index % 2 == 0
                        ? try await service.get(oldToken)
                        : try await service.patch(oldToken, "{\"r\(index)\":\(index)}")
                    return (response.status, response.text.contains(newToken))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(ContinuousClock.now - started < .seconds(60), "the requests ran inside the window")
        #expect(statuses.allSatisfy { $0.0 == 200 }, "\(statuses.filter { $0.0 != 200 }.map(\.0))")
        #expect(!statuses.contains { $0.1 }, "the old token never learns the new one")
        #expect(try await service.get(newToken).text.contains(#""r99":99"#), "writes with the old token reached the same session")
        let refused = try await Self.rotate(service, oldToken)
        #expect(refused.status == 409)
        #expect(refused.errorCode == "token_superseded")
        #expect(!refused.text.contains("sds_"))
        #expect(try await Self.reuseCount(service, action: "revoked") == 0)

        // The next rotation, with a window of 1 s: once it has passed, the token it replaced is a
        // reuse. The session is revoked, and the newest token dies with it.
        let rotatedAgain = Date()
        let (newestToken, _) = try Self.rotated(try await Self.rotate(service, newToken, #"{"grace_seconds":1}"#))
        #expect(try await service.get(oldToken).status == 404, "two rotations back is no token of the session")
        #expect(await eventually(timeout: .seconds(10), interval: .milliseconds(100)) {
            try await service.get(newToken, query: "?touch=false").status == 404
        })
        #expect(Date().timeIntervalSince(rotatedAgain) >= 1, "not before its window ended")
        #expect(try await service.get(newestToken).errorCode == "session_not_found")
        #expect(try await Self.listedIDs(service, user: "gwen") == [])
        #expect(try await service.request("GET", "/v1/sessions/\(id)").status == 404)
        #expect(try await Self.reuseCount(service, action: "revoked") == 1)
        let warnings = logs.all.filter { $0.hasPrefix("warning") && $0.contains("grace window") }
        #expect(warnings.count == 1 && warnings.first?.contains("session=\(id)") == true, "\(warnings)")
        #expect(!logs.all.contains { log in
            [oldToken, newToken, newestToken].contains { log.contains($0) || log.contains(String($0.suffix(43))) }
        })
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func underTheRejectPolicyAReusedTokenIsOnlyRefused(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend) { $0.rotationReuse = .reject }
        let (first, _) = try await service.create(#"{"user":"hal"}"#)
        let (second, _) = try Self.rotated(try await Self.rotate(service, first))
        let (third, _) = try Self.rotated(try await Self.rotate(service, second, #"{"grace_seconds":0}"#))
        #expect(try await service.patch(second, #"{"a":1}"#).errorCode == "session_not_found")
        #expect(try await service.request("DELETE", "/v1/session", headers: [("X-Session-Token", second)]).status == 204)
        #expect(try await service.get(third).status == 200, "refused, not revoked: a logout with the old token ended nothing")
        #expect(try await Self.reuseCount(service, action: "rejected") == 2)
        // Only the immediate predecessor is remembered: an older token is simply unknown.
        #expect(try await service.get(first).status == 404)
        #expect(try await Self.reuseCount(service, action: "rejected") == 2)
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func theConfiguredGraceAppliesWhenARotationNamesNone(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend) { $0.rotationGrace = .seconds(30) }
        let (old, _) = try await service.create()
        let (new, _) = try Self.rotated(try await Self.rotate(service, old))
        #expect(try await service.get(old).status == 200)
        #expect(try await service.request("DELETE", "/v1/session", headers: [("X-Session-Token", old)]).status == 204)
        #expect(try await service.get(new).status == 404, "a logout in flight with the old token ends the session")
        for body in [#"{"grace_seconds":61}"#, #"{"grace_seconds":-1}"#, #"{"grace_seconds":1.5}"#, #"{"grace_seconds":"5"}"#,
                     #"{"reauthenticated":1}"#, #"{"other":true}"#, "[]"] {
            let (token, _) = try await service.create()
            #expect(try await Self.rotate(service, token, body).errorCode?.hasPrefix("invalid_") == true, "\(body)")
            #expect(try await service.get(token).status == 200, "a refused rotation changes nothing: \(body)")
        }
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func maxAuthAgeRefusesAStaleLoginUntilARotationReauthenticates(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend) { $0.touchInterval = .seconds(0) }
        let (token, created) = try await service.create(#"{"user":"ivy"}"#)
        #expect(created["authenticated_at"] as? String == created["created_at"] as? String)
        #expect(try await service.get(token, query: "?max_auth_age=60").status == 200)
        let authenticated = try SessionLifecycleTests.milliseconds(created["authenticated_at"])
        #expect(await eventually { Int64(Date().timeIntervalSince1970 * 1000) > authenticated + 1200 })
        let before = try #require(try await service.get(token, query: "?touch=false").jsonObject)
        let refused = try await service.get(token, query: "?max_auth_age=1")
        #expect(refused.status == 403)
        #expect(refused.errorCode == "reauthentication_required")
        let after = try #require(try await service.get(token, query: "?touch=false").jsonObject)
        #expect(after["last_seen_at"] as? String == before["last_seen_at"] as? String, "a refused read touches nothing")
        for bad in ["-1", "1.5", "x", ""] {
            #expect(try await service.get(token, query: "?max_auth_age=\(bad)").errorCode == "invalid_request", "\(bad)")
        }

        let (plain, plainSession) = try Self.rotated(try await Self.rotate(service, token))
        #expect(plainSession["authenticated_at"] as? String == created["authenticated_at"] as? String)
        #expect(try await service.get(plain, query: "?max_auth_age=1").status == 403)
        // A reauthenticating rotation, then a read within the second it allows: on a machine too
        // busy to read within a second of rotating, rotate again (each makes a fresh login).
        var current = plain
        var freshRead = 0
        for _ in 0..<5 where freshRead != 200 {
            let (fresh, freshSession) = try Self.rotated(try await Self.rotate(service, current, #"{"reauthenticated":true}"#))
            #expect(try SessionLifecycleTests.milliseconds(freshSession["authenticated_at"]) > authenticated + 1000)
            freshRead = try await service.get(fresh, query: "?max_auth_age=1").status
            current = fresh
        }
        #expect(freshRead == 200)
        await service.stop()
    }

    /// Hundreds of rotations while every few milliseconds Redis drops every client connection
    /// (`CLIENT KILL` of each `TYPE normal` client, on every primary; the sentinel's own links are
    /// spared, or the sentinel would see the primary as down and fail it over). Each rotation is one function call on the
    /// session's key, repeated after a broken connection and recognised by its write id, so every
    /// session ends up reachable by exactly one of its tokens (the one the caller was given) and
    /// listed once.
    @Test(arguments: Topology.allCases) func rotationsSurviveConnectionsKilledEveryFewMilliseconds(_ topology: Topology) async throws {
        // Its own Redis: the kills would break the connections of tests sharing one.
        let backend = try await Backend.start(topology)
        // Reject: probing an old token must not revoke what the test is counting.
        let service = try await TestService.start(on: backend) { $0.rotationReuse = .reject }
        let user = "kill-\(topology)"
        var sessions: [(token: String, id: String)] = []
        for _ in 0..<300 {
            let (token, session) = try await service.create("{\"user\":\"\(user)\",\"data\":{\"a\":1}}")
            sessions.append((token, try #require(session["id"] as? String)))
        }
        let primaries = try await backend.primaryPorts().map { port in
            RedisClient.running(configuration: RedisConfiguration(host: "127.0.0.1", port: port))
        }
        let killer = Task {
            var kills = 0
            while !Task.isCancelled {
                for primary in primaries {
                    kills += (try? await Self.killClientConnections(primary)) ?? 0
                }
                try? await Task.sleep(for: .milliseconds(3))  // the cadence of the fault, not a wait for a condition
            }
            return kills
        }
        let outcomes = try await withThrowingTaskGroup(of: (Int, String?, Int).self) { group in
            var outcomes: [(index: Int, token: String?, status: Int)] = []
            for (index, session) in sessions.enumerated() {
                if index >= 8, let finished = try await group.next() { outcomes.append(finished) }
                group.addTask {
                    let response = try await Self.rotate(service, session.token)
                    return (index, response.jsonObject?["token"] as? String, response.status)
                }
            }
            for try await finished in group { outcomes.append(finished) }
            return outcomes
        }
        killer.cancel()
        let kills = await killer.value
        #expect(kills > 50, "connections were killed while rotating (\(kills))")
        #expect(outcomes.count == sessions.count)
        #expect(outcomes.allSatisfy { $0.status == 200 }, "\(outcomes.filter { $0.status != 200 }.map(\.status))")
        for outcome in outcomes {
            let old = try await service.get(sessions[outcome.index].token, query: "?touch=false").status
            var new: Int?
            if let token = outcome.token { new = try await service.get(token, query: "?touch=false").status }
            #expect(old == 404 && new == 200, "session \(sessions[outcome.index].id): old \(old), new \(new.map(String.init) ?? "none")")
        }
        let listed = try await Self.listedIDs(service, user: user)
        #expect(listed.count == sessions.count)
        #expect(Set(listed) == Set(sessions.map(\.id)))
        for primary in primaries { await primary.shutdown() }
        await service.stop()
    }

    /// Kills every normal client connection of `redis` but its own and a sentinel's; returns how many.
    static func killClientConnections(_ redis: RedisClient) async throws -> Int {
        let own = try await redis.send("CLIENT", "ID").integer
        let clients = try await redis.send("CLIENT", "LIST", "TYPE", "normal").string ?? ""
        var killed = 0
        for line in clients.split(separator: "\n") {
            let fields = Dictionary(line.split(separator: " ").compactMap { field -> (Substring, Substring)? in
                guard let equals = field.firstIndex(of: "=") else { return nil }
                return (field[..<equals], field[field.index(after: equals)...])
            }, uniquingKeysWith: { first, _ in first })
            guard let id = fields["id"], Int64(id) != own, fields["name"]?.hasPrefix("sentinel-") != true else { continue }
            killed += Int(try await redis.send("CLIENT", "KILL", "ID", RedisArgument(String(id))).integer ?? 0)
        }
        return killed
    }
}
