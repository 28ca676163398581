import Foundation
import RedisTestSupport
import Testing

@testable import SessionService

/// The contract is served by the server and is the file in the repository.
@Suite struct ContractTests {
    @Test func servesTheRepositorysOpenAPIDocument() async throws {
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        let response = try await service.request("GET", "/openapi.yaml")
        #expect(response.status == 200)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let file = try Data(contentsOf: root.appendingPathComponent("openapi.yaml"))
        // openapi.yaml at the root links to the bundled resource; a tool that replaced the link with a
        // copy would let the two drift apart, which this catches.
        #expect(response.body.count == file.count && response.body == Array(file), "the served contract differs from openapi.yaml")
        #expect(response.text.hasPrefix("openapi: 3.1"))
        #expect(try await service.request("GET", "/healthz").text == #"{"status":"ok"}"#)
        await service.stop()
    }

    /// The 405 table (APIRoutes) knows every path and method of the contract, and no other.
    @Test func theMethodTableMatchesTheContract() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        var contract: [String: Set<String>] = [:]
        var path: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast()).replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")
            } else if let current = path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                let word = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "put", "post", "patch", "delete"].contains(word) { contract[current, default: []].insert(word.uppercased()) }
            } else if !line.hasPrefix(" ") && !line.isEmpty {
                path = nil
            }
        }
        let table = Dictionary(uniqueKeysWithValues: APIRoutes.allowedMethods.map { pattern, methods in
            ("/" + pattern.joined(separator: "/"), Set(methods.map(\.rawValue)))
        })
        #expect(table == contract)
    }
}
