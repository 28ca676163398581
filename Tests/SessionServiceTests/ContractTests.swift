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
        #expect(response.body == Array(file))
        #expect(response.text.hasPrefix("openapi: 3.1"))
        #expect(try await service.request("GET", "/healthz").text == #"{"status":"ok"}"#)
        await service.stop()
    }
}
