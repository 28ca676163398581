import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import Testing

@testable import SessionService

/// The HTTP transport on NIO's async testing channel, in front of a real Hummingbird router with
/// routes made for the test: ordering, half-close, malformed input, `Connection: close` and the
/// body limit, as events a socket would deliver. No sockets, no Redis.
@Suite struct HTTPResponderHandlerTests {
    /// `/slow` answers after `/fast` would have: a later request must still be answered later.
    static func router() -> Router<SessionRequestContext> {
        let router = Router(context: SessionRequestContext.self)
        router.get("slow") { _, _ -> String in
            try await Task.sleep(for: .milliseconds(100))
            return "slow"
        }
        router.get("fast") { _, _ in "fast" }
        router.post("echo") { request, _ -> String in
            var request = request
            let body = try await request.collectBody(upTo: 16)
            return String(buffer: body)
        }
        return router
    }

    static func connectedChannel() async throws -> NIOAsyncTestingChannel {
        let responder = router().buildResponder()
        let channel = try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.addHandler(
                HTTPResponderHandler(responder: responder, logger: Logger(label: "test"), serverName: "test", bodyLimit: 16)
            )
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080))
        return channel
    }

    static func request(
        _ path: String, method: HTTPRequest.Method = .get, headers: HTTPFields = [:], body: [String] = [], on channel: NIOAsyncTestingChannel
    ) async throws {
        try await channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: method, scheme: nil, authority: "test", path: path, headerFields: headers)))
        for chunk in body { try await channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: chunk))) }
        try await channel.writeInbound(HTTPRequestPart.end(nil))
    }

    /// The next whole response the handler wrote, within a deadline.
    static func response(on channel: NIOAsyncTestingChannel) async throws -> (head: HTTPResponse, body: String) {
        try await withDeadline {
            guard case .head(let head) = try await channel.waitForOutboundWrite(as: HTTPResponsePart.self) else {
                throw HandlerTestError("a response must start with its head")
            }
            var body = ""
            while true {
                switch try await channel.waitForOutboundWrite(as: HTTPResponsePart.self) {
                case .body(let buffer): body += String(buffer: buffer)
                case .end: return (head, body)
                case .head: throw HandlerTestError("a second head before the end")
                }
            }
        }
    }

    static func waitUntilClosed(_ channel: NIOAsyncTestingChannel) async throws {
        try await withDeadline { try await channel.closeFuture.get() }
    }

    /// Fails instead of hanging when what is awaited never comes.
    static func withDeadline<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .seconds(5))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw HandlerTestError("nothing came within 5 s") }
            return value
        }
    }

    @Test func pipelinedRequestsAreAnsweredInTheOrderTheyCameEvenWhenALaterOneIsFaster() async throws {
        let channel = try await Self.connectedChannel()
        try await Self.request("/slow", on: channel)
        try await Self.request("/fast", on: channel)
        try await Self.request("/fast", on: channel)
        #expect(try await Self.response(on: channel).body == "slow")
        #expect(try await Self.response(on: channel).body == "fast")
        #expect(try await Self.response(on: channel).body == "fast")
        #expect(channel.isActive, "keep-alive: the connection stays open")
        _ = try? await channel.finish()
    }

    @Test func aHalfCloseAfterRequestsStillGetsEveryAnswerThenTheConnectionCloses() async throws {
        let channel = try await Self.connectedChannel()
        try await Self.request("/slow", on: channel)
        try await Self.request("/fast", on: channel)
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let first = try await Self.response(on: channel)
        #expect(first.head.status == .ok && first.body == "slow")
        #expect(try await Self.response(on: channel).body == "fast")
        try await Self.waitUntilClosed(channel)
    }

    @Test func aHalfCloseBetweenRequestsClosesTheConnection() async throws {
        let channel = try await Self.connectedChannel()
        try await Self.request("/fast", on: channel)
        #expect(try await Self.response(on: channel).body == "fast")
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        try await Self.waitUntilClosed(channel)
    }

    @Test func malformedInputIsAnswered400AfterTheAnswersOwedBeforeItThenClosed() async throws {
        let channel = try await Self.connectedChannel()
        try await Self.request("/slow", on: channel)
        channel.pipeline.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        let first = try await Self.response(on: channel)
        #expect(first.head.status == .ok && first.body == "slow")
        let refusal = try await Self.response(on: channel)
        #expect(refusal.head.status == .badRequest)
        #expect(refusal.head.headerFields[.connection] == "close")
        #expect(refusal.body.contains(#""code":"invalid_request""#))
        try await Self.waitUntilClosed(channel)
    }

    @Test func connectionCloseIsAnsweredWithCloseThenTheConnectionCloses() async throws {
        let channel = try await Self.connectedChannel()
        try await Self.request("/fast", headers: [.connection: "keep-alive, Close"], on: channel)
        let response = try await Self.response(on: channel)
        #expect(response.body == "fast")
        #expect(response.head.headerFields[.connection] == "close")
        try await Self.waitUntilClosed(channel)
    }

    @Test func everyAnswerCarriesLengthDateAndServer() async throws {
        let channel = try await Self.connectedChannel()
        try await Self.request("/fast", on: channel)
        let response = try await Self.response(on: channel)
        #expect(response.head.headerFields[.contentLength] == "4")
        #expect(response.head.headerFields[.server] == "test")
        #expect(response.head.headerFields[.date]?.hasSuffix(" GMT") == true)
        _ = try? await channel.finish()
    }

    @Test func aBodyOverTheLimitIsRefusedByTheRouteAndNotKeptWhole() async throws {
        let channel = try await Self.connectedChannel()
        try await Self.request("/echo", method: .post, body: ["0123456789"], on: channel)
        #expect(try await Self.response(on: channel).body == "0123456789")
        // 30 bytes against a 16-byte limit: the route sees 17 (enough to refuse), never 30.
        try await Self.request("/echo", method: .post, body: ["0123456789", "0123456789", "0123456789"], on: channel)
        #expect(try await Self.response(on: channel).head.status == .contentTooLarge)
        _ = try? await channel.finish()
    }
}

struct HandlerTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
