import Foundation
import RedisTestSupport
import Testing

/// Concurrent writers of one session: no lost updates, no torn values, exactly one If-Match winner.
@Suite(.sharedBackends) struct ConcurrencyTests {
    @Test(arguments: Topology.allCases) func fiftyConcurrentPatchesOfDistinctAttributesAllSurvive(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let (token, _) = try await service.create(#"{"data":{"base":0}}"#)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<50 {
                group.addTask { try await service.patch(token, "{\"attribute\(index)\":\(index)}").status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.allSatisfy { $0 == 200 })
        let session = try #require(try await service.get(token).jsonObject)
        let data = try #require(session["data"] as? [String: Any])
        for index in 0..<50 {
            #expect(data["attribute\(index)"] as? Int == index, "attribute\(index) survived")
        }
        #expect(data["base"] as? Int == 0)
        #expect(session["version"] as? Int == 51)
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func concurrentPatchesOfOneAttributeLeaveOneWrittenValueWhole(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let (token, _) = try await service.create()
        let written = (0..<20).map { index in
            "{\"writer\":\(index),\"items\":[\((0..<50).map { "\"\(index)-\($0)\"" }.joined(separator: ","))]}"
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for value in written {
                group.addTask { _ = try await service.patch(token, "{\"shared\":\(value)}") }
            }
            try await group.waitForAll()
        }
        let text = try await service.get(token).text
        let matches = written.filter { text.contains("\"shared\":\($0)") }
        #expect(matches.count == 1, "exactly one writer's value, byte for byte, never a mix")
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func anIfMatchRaceHasExactlyOneWinner(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let (token, _) = try await service.create()
        let responses = try await withThrowingTaskGroup(of: HTTPTestResponse.self) { group in
            for index in 0..<20 {
                group.addTask { try await service.patch(token, "{\"winner\":\(index)}", ifMatch: "\"1\"") }
            }
            return try await group.reduce(into: [HTTPTestResponse]()) { $0.append($1) }
        }
        #expect(responses.filter { $0.status == 200 }.count == 1)
        let losers = responses.filter { $0.status == 412 }
        #expect(losers.count == 19)
        #expect(losers.allSatisfy { $0.errorCode == "version_mismatch" && $0.header("ETag") == "\"2\"" })
        #expect(try await service.get(token).jsonObject?["version"] as? Int == 2)
        await service.stop()
    }

    @Test(arguments: Topology.allCases) func ifMatchAcceptsTheCurrentVersionAStarOrAListAndRefusesGarbage(_ topology: Topology) async throws {
        let backend = try await Backend.forTest(topology)
        let service = try await TestService.start(on: backend)
        let (token, _) = try await service.create()
        #expect(try await service.patch(token, #"{"a":1}"#, ifMatch: "\"1\"").status == 200)
        #expect(try await service.patch(token, #"{"a":2}"#, ifMatch: "\"7\", \"2\"").status == 200)
        #expect(try await service.patch(token, #"{"a":3}"#, ifMatch: "*").status == 200)
        let stale = try await service.patch(token, #"{"a":4}"#, ifMatch: "\"1\"")
        #expect(stale.status == 412 && stale.header("ETag") == "\"4\"")
        for malformed in ["1", "W/\"4\"", "\"x\"", "\"\"", ","] {
            #expect(try await service.patch(token, #"{"a":5}"#, ifMatch: malformed).errorCode == "invalid_request", "If-Match: \(malformed)")
        }
        #expect(try await service.get(token).jsonObject?["version"] as? Int == 4)
        await service.stop()
    }
}
