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

    /// Every path of the contract allows exactly the contract's methods, as the server says in the
    /// `Allow` of its 405 (made from the router's own routes), and no path beyond the contract exists.
    @Test func theRoutesAreTheContractsRoutes() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        var contract: [String: Set<String>] = [:]
        var path: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if let current = path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                let word = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "head", "put", "post", "patch", "delete"].contains(word) { contract[current, default: []].insert(word.uppercased()) }
            } else if !line.hasPrefix(" ") && !line.isEmpty {
                path = nil
            }
        }
        #expect(contract.count >= 10)
        let redis = try await RedisServer.start()
        let service = try await TestService.start(redis: redis)
        var served: [String: Set<String>] = [:]
        for template in contract.keys {
            // A parameter becomes a sample value: {id} and {user} are any one segment.
            let concrete = template.replacingOccurrences(of: "{id}", with: String(repeating: "a", count: 32))
                .replacingOccurrences(of: "{user}", with: "alice")
            let response = try await service.request("TRACE", concrete)
            #expect(response.status == 405, "TRACE \(concrete)")
            served[template] = Set((response.header("Allow") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        #expect(served == contract)
        #expect(try await service.request("TRACE", "/v1/nothing-here").status == 404)
        await service.stop()
    }
}
