import Foundation
import RedisClient
import RedisTestSupport
import Testing

/// Devices, and what a user can do about their other sessions ("sign out my other devices"),
/// through real HTTP on each topology.
@Suite(.sharedBackends) struct OtherSessionsTests {
    @Test(arguments: Topology.allCases) func aDeviceIsKeptApartFromDataAndShownEverywhere(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let (token, session) = try await service.create(
            #"{"user":"jo","device":{"ip":"2001:db8::7","user_agent":"Mozilla/5.0 (X11; Linux) Firefox/130.0","label":"Jo’s laptop"},"data":{"a":1}}"#
        )
        let device = try #require(session["device"] as? [String: Any])
        #expect(device["ip"] as? String == "2001:db8::7")
        #expect(device["user_agent"] as? String == "Mozilla/5.0 (X11; Linux) Firefox/130.0")
        #expect(device["label"] as? String == "Jo’s laptop")
        let read = try await service.get(token)
        #expect(read.text.contains(#""data":{"a":1}"#), "the device is not data")
        #expect((read.jsonObject?["device"] as? [String: Any])?["ip"] as? String == "2001:db8::7")
        let listed = try await service.request("GET", "/v1/users/jo/sessions")
        #expect(((listed.jsonObject?["sessions"] as? [[String: Any]])?.first?["device"] as? [String: Any])?["label"] as? String == "Jo’s laptop")
        // Every member is optional; a session without a device shows every member null.
        let (_, partial) = try await service.create(#"{"device":{"ip":"192.0.2.1"}}"#)
        #expect((partial["device"] as? [String: Any])?["user_agent"] is NSNull)
        let (_, none) = try await service.create()
        let empty = try #require(none["device"] as? [String: Any])
        #expect(empty.count == 3 && empty.values.allSatisfy { $0 is NSNull })
        // A patch never touches it.
        let patched = try await service.patch(token, #"{"device":"not this one"}"#)
        #expect((patched.jsonObject?["device"] as? [String: Any])?["ip"] as? String == "2001:db8::7")
        await service.stop()
    }

    @Test func aBadDeviceIsRefusedAndNothingIsCreated() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        let inspector = RedisClient.running(configuration: try RedisConfiguration(url: redis.url))
        let bad = [
            #"{"device":"laptop"}"#, #"{"device":{"ip":"10.0.0.300"}}"#, #"{"device":{"ip":"[::1]"}}"#,
            #"{"device":{"ip":"example.com"}}"#, #"{"device":{"ip":7}}"#, #"{"device":{"label":""}}"#,
            "{\"device\":{\"label\":\"\(String(repeating: "x", count: 129))\"}}", "{\"device\":{\"label\":\"\(String(repeating: "é", count: 129))\"}}",
            "{\"device\":{\"user_agent\":\"\(String(repeating: "x", count: 513))\"}}",
            #"{"device":{"label":"tab\there"}}"#, #"{"device":{"label":"bell\u0007"}}"#, #"{"device":{"os":"linux"}}"#,
            #"{"device":{"os":null}}"#, #"{"device":{"":null}}"#,  // unknown members, even null ones (found by schemathesis)
        ]
        for body in bad {
            let response = try await service.request("POST", "/v1/sessions", json: body)
            #expect(response.status == 400 && response.errorCode == "invalid_request", "\(body): \(response.status) \(response.text)")
        }
        // Only what runs the fleet: its announcements and the sweeper's leases; no session, no event.
        let keys = try await inspector.send("KEYS", "*").array?.compactMap(\.string) ?? []
        #expect(keys.filter { $0 != "sd:fleet" && $0 != "sd:readyz" && !$0.hasPrefix("sd:{e}:lease:") } == [], "\(keys)")
        #expect(try await service.request("POST", "/v1/sessions", json: "{\"device\":{\"label\":\"\(String(repeating: "é", count: 128))\"}}").status == 201, "characters, not bytes")
        await inspector.shutdown()
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func aUserSeesAndSignsOutTheirOtherSessions(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        var sessions: [(token: String, id: String)] = []
        for index in 0..<4 {
            let (token, session) = try await service.create("{\"user\":\"kim\",\"device\":{\"label\":\"device \(index)\"},\"data\":{\"n\":\(index)}}")
            sessions.append((token, try #require(session["id"] as? String)))
        }
        let (strangerToken, _) = try await service.create(#"{"user":"kimberly"}"#)
        let here = sessions[2]
        let others = try await service.request("GET", "/v1/session/others", headers: [("X-Session-Token", here.token)])
        #expect(others.status == 200)
        #expect(UserSessionsTests.ids(others) == [sessions[0].id, sessions[1].id, sessions[3].id], "the others, oldest first")
        #expect(!others.text.contains("\"data\""))
        #expect(others.text.contains(#""label":"device 3""#))

        let signedOut = try await service.request("DELETE", "/v1/session/others", headers: [("X-Session-Token", here.token)])
        #expect(signedOut.status == 200)
        #expect(signedOut.jsonObject?["revoked"] as? Int == 3)
        for (index, session) in sessions.enumerated() {
            #expect(try await service.get(session.token).status == (index == 2 ? 200 : 404))
        }
        #expect(try await service.get(strangerToken).status == 200)
        #expect(UserSessionsTests.ids(try await service.request("GET", "/v1/users/kim/sessions")) == [here.id])
        #expect(UserSessionsTests.ids(try await service.request("GET", "/v1/session/others", headers: [("X-Session-Token", here.token)])) == [])

        // Without a user there are no others; without a live session there is nothing to ask about.
        let (anonymous, _) = try await service.create()
        let none = try await service.request("GET", "/v1/session/others", headers: [("X-Session-Token", anonymous)])
        #expect(none.status == 200 && UserSessionsTests.ids(none) == [] && none.text == #"{"sessions":[]}"#)
        #expect(try await service.request("DELETE", "/v1/session/others", headers: [("X-Session-Token", anonymous)]).jsonObject?["revoked"] as? Int == 0)
        #expect(try await service.request("GET", "/v1/session/others", headers: [("X-Session-Token", sessions[0].token)]).errorCode == "session_not_found")
        #expect(try await service.request("DELETE", "/v1/session/others").errorCode == "missing_session_token")
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func anAdministratorRevokesAllButOneSession(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        var sessions: [(token: String, id: String)] = []
        for _ in 0..<3 {
            let (token, session) = try await service.create(#"{"user":"lou"}"#)
            sessions.append((token, try #require(session["id"] as? String)))
        }
        let kept = sessions[1]
        let revoked = try await service.request("DELETE", "/v1/users/lou/sessions?except=\(kept.id)")
        #expect(revoked.jsonObject?["revoked"] as? Int == 2)
        #expect(try await service.get(kept.token).status == 200)
        #expect(try await service.get(sessions[0].token).status == 404)
        #expect(try await service.get(sessions[2].token).status == 404)
        #expect(UserSessionsTests.ids(try await service.request("GET", "/v1/users/lou/sessions")) == [kept.id])
        for bad in ["", "xyz", kept.id.uppercased(), kept.id + "0"] {
            #expect(try await service.request("DELETE", "/v1/users/lou/sessions?except=\(bad)").errorCode == "invalid_request", "\(bad)")
        }
        #expect(try await service.get(kept.token).status == 200, "a refused request revoked nothing")
        await service.stop()
    }
}
