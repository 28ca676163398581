import Foundation
import RedisTestSupport
import Testing

/// The contract is served by the server and is the file in the repository.
@Suite struct ContractTests {
    @Test func servesTheRepositorysOpenAPIDocument() async throws {
        let redis = try RedisServer.start()
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
}
