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
/// body limit, as events a socket would deliver; and, as raw bytes through sessiond's whole
/// connection pipeline (its decoder included), `HEAD` and the heads the decoder refuses. No
/// sockets, no Redis.
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
                HTTPResponderHandler(
                    responder: responder, logger: Logger(label: "test"), serverName: "test", bodyLimit: 16, requestLine: RequestLineWatcher()
                )
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

/// Raw bytes in, raw bytes out, through the pipeline every sessiond connection gets.
@Suite struct HTTPWireTests {
    static func connectedChannel() async throws -> NIOAsyncTestingChannel {
        let responder = HTTPResponderHandlerTests.router().buildResponder()
        let channel = NIOAsyncTestingChannel()
        let setup = SessionHTTPChannel(responder: responder, serverName: "test", bodyLimit: 16, idleTimeout: .seconds(60))
        _ = try await channel.eventLoop.flatSubmit { setup.setup(channel: channel, logger: Logger(label: "test")) }.get()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080))
        return channel
    }

    /// What the server wrote until `done` says the text is complete (within 5 s).
    static func written(on channel: NIOAsyncTestingChannel, until done: @escaping @Sendable (String) -> Bool) async throws -> String {
        try await HTTPResponderHandlerTests.withDeadline {
            var text = ""
            while !done(text) {
                switch try await channel.waitForOutboundWrite(as: IOData.self) {
                case .byteBuffer(let buffer): text += String(buffer: buffer)
                case .fileRegion: throw HandlerTestError("no file is ever sent")
                }
            }
            return text
        }
    }

    /// The status line and headers of the one answer a refused request gets, and whether the
    /// connection was then closed.
    static func refusal(of bytes: String) async throws -> (answer: String, closed: Bool) {
        let channel = try await connectedChannel()
        try await channel.writeInbound(ByteBuffer(string: bytes))
        let answer = try await written(on: channel) { $0.contains("\r\n\r\n") && $0.hasSuffix("}") }
        try await HTTPResponderHandlerTests.waitUntilClosed(channel)
        return (answer, !channel.isActive)
    }

    @Test func headIsAnsweredAsGetWithItsLengthAndWithoutTheBody() async throws {
        let channel = try await Self.connectedChannel()
        try await channel.writeInbound(ByteBuffer(string: "HEAD /fast HTTP/1.1\r\nHost: test\r\n\r\nGET /fast HTTP/1.1\r\nHost: test\r\n\r\n"))
        let text = try await Self.written(on: channel) { $0.components(separatedBy: "\r\n\r\n").count == 3 && $0.hasSuffix("fast") }
        let answers = text.components(separatedBy: "HTTP/1.1 ").filter { !$0.isEmpty }
        #expect(answers.count == 2, "\(text)")
        #expect(answers[0].hasPrefix("200 OK") && answers[0].lowercased().contains("content-length: 4\r\n"), "\(answers[0])")
        #expect(answers[0].hasSuffix("\r\n\r\n"), "no body after the head of a HEAD answer: \(answers[0])")
        #expect(answers[1].hasPrefix("200 OK") && answers[1].hasSuffix("\r\n\r\nfast"))
        _ = try? await channel.finish()
    }

    @Test func aTargetOver80KiBIs414AndTheConnectionCloses() async throws {
        let path = "/fast?" + String(repeating: "a", count: 100 * 1024)
        let (answer, closed) = try await Self.refusal(of: "GET \(path) HTTP/1.1\r\nHost: test\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 414 "), "\(answer.prefix(200))")
        #expect(answer.contains(#""code":"uri_too_long""#))
        #expect(closed)
    }

    @Test func headerFieldsOver80KiBAre431WhetherOneIsHugeOrThereAreMany() async throws {
        let huge = "GET /fast HTTP/1.1\r\nHost: test\r\nX-Big: \(String(repeating: "b", count: 1 << 20))\r\n\r\n"
        let many = "GET /fast HTTP/1.1\r\nHost: test\r\n" + (0..<2000).map { "X-Field-\($0): \(String(repeating: "c", count: 40))\r\n" }.joined() + "\r\n"
        for request in [huge, many] {
            let (answer, closed) = try await Self.refusal(of: request)
            #expect(answer.hasPrefix("HTTP/1.1 431 "), "\(answer.prefix(200))")
            #expect(answer.contains(#""code":"headers_too_large""#))
            #expect(closed)
        }
    }

    @Test func aMethodHTTPDoesNotDefineIs501() async throws {
        let (answer, closed) = try await Self.refusal(of: "FROB /fast HTTP/1.1\r\nHost: test\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 501 "), "\(answer.prefix(200))")
        #expect(answer.contains(#""code":"not_implemented""#))
        #expect(closed)
    }

    @Test func bytesThatAreNotHTTPAreStill400() async throws {
        let (answer, closed) = try await Self.refusal(of: "GET /fast HTTP/1.1\r\nHo st: test\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 400 "), "\(answer.prefix(200))")
        #expect(answer.contains(#""code":"invalid_request""#))
        #expect(closed)
    }
}

/// The watcher alone: which heads hold a request line longer than the decoder takes.
@Suite struct RequestLineWatcherTests {
    static func watcher(after chunks: [String]) async throws -> RequestLineWatcher {
        let watcher = RequestLineWatcher()
        let channel = try await NIOAsyncTestingChannel(handlers: [watcher])
        for chunk in chunks {
            try await channel.writeInbound(ByteBuffer(string: chunk))
            #expect(try await channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: chunk), "passed on unchanged")
        }
        _ = try? await channel.finish()
        return watcher
    }

    @Test func onlyARequestLinePastTheDecodersLimitCounts() async throws {
        let long = String(repeating: "a", count: RequestLineWatcher.decoderFieldLimit)
        #expect(try await Self.watcher(after: ["GET /\(long)"]).sawOverlongRequestLine)
        #expect(try await Self.watcher(after: ["G", "ET /", long]).sawOverlongRequestLine, "split over reads")
        #expect(try await Self.watcher(after: ["GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /\(long) HTTP/1.1\r\n\r\n"]).sawOverlongRequestLine, "a later request, whole")
        #expect(try await Self.watcher(after: ["GET / HTTP/1.1\r\nX-Big: \(long)\r\n"]).sawOverlongRequestLine == false, "a header line")
        #expect(try await Self.watcher(after: ["GET / HTTP/1.1\r\nX-Big: b b \(long)"]).sawOverlongRequestLine == false, "spaces in a value")
        #expect(try await Self.watcher(after: ["GET /short HTTP/1.1\r\n", " folded \(long)"]).sawOverlongRequestLine == false)
        #expect(try await Self.watcher(after: ["GET /\(long.dropLast(20)) HTTP/1.1\r\n"]).sawOverlongRequestLine == false, "up to the limit")
    }
}

struct HandlerTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
