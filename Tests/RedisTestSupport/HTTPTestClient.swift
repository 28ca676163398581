import NIOCore
import NIOHTTP1
import NIOPosix

/// A response as the test saw it on the wire.
public struct HTTPTestResponse: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]

    /// The first value of a header, matched case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A minimal real HTTP/1.1 client over SwiftNIO: one connection per request (or per pipelined
/// batch), every wait bounded.
/// Tests use it to talk to sessiond exactly as any other caller would.
public enum HTTPTestClient {
    public static func request(
        _ method: String,
        port: Int,
        _ path: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration = .seconds(15)
    ) async throws -> HTTPTestResponse {
        let responses = try await exchange(port: port, requests: [Request(method, path, headers: headers, body: body)], timeout: timeout)
        guard let response = responses.first else { throw HTTPTestClientError.closedBeforeResponse }
        return response
    }

    /// Convenience for JSON bodies given as text.
    public static func request(
        _ method: String, port: Int, _ path: String, headers: [(String, String)] = [], json: String
    ) async throws -> HTTPTestResponse {
        try await request(
            method, port: port, path, headers: [("Content-Type", "application/json")] + headers, body: Array(json.utf8)
        )
    }
}

extension HTTPTestClient {
    /// One request of ``exchange(port:requests:timeout:)``.
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var headers: [(String, String)]
        public var body: [UInt8]?

        public init(_ method: String, _ path: String, headers: [(String, String)] = [], json: String? = nil) {
            self.init(
                method, path, headers: json == nil ? headers : [("Content-Type", "application/json")] + headers,
                body: json.map { Array($0.utf8) }
            )
        }

        public init(_ method: String, _ path: String, headers: [(String, String)], body: [UInt8]?) {
            self.method = method
            self.path = path
            self.headers = headers
            self.body = body
        }
    }

    /// Writes all `requests` on one keep-alive connection at once (pipelined: none waits for an
    /// answer), the last with `Connection: close`, and returns the responses once each request has
    /// one (as any HTTP client, it does not wait for the server to close), or whatever came before
    /// the server closed the connection.
    public static func exchange(port: Int, requests: [Request], timeout: Duration = .seconds(15)) async throws -> [HTTPTestResponse] {
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = eventLoop.makePromise(of: [HTTPTestResponse].self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ResponsesToRequests(expected: requests.count, promise: promise))
                    }
                }
                .connect(host: "127.0.0.1", port: port)
                .get()
        } catch {
            // A refused connect is this request's failure: the promise must not be left unfulfilled
            // (NIO traps on that in debug builds, which would end the whole test run).
            promise.fail(error)
            throw error
        }
        let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            promise.fail(HTTPTestClientError.timeout)
            channel.close(promise: nil)
        }
        for (index, request) in requests.enumerated() {
            var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: request.method), uri: request.path)
            head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
            for (name, value) in request.headers { head.headers.add(name: name, value: value) }
            if index == requests.count - 1 { head.headers.add(name: "Connection", value: "close") }
            if let body = request.body { head.headers.add(name: "Content-Length", value: String(body.count)) }
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let body = request.body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
            channel.write(HTTPClientRequestPart.end(nil), promise: nil)
        }
        channel.flush()
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        return try await promise.futureResult.get()
    }
}

public enum HTTPTestClientError: Error {
    case timeout
    case closedBeforeResponse
}

/// Collects the responses on a connection until every request has one, or the connection closes.
private final class ResponsesToRequests: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let expected: Int
    private let promise: EventLoopPromise<[HTTPTestResponse]>
    private var responses: [HTTPTestResponse] = []
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []

    init(expected: Int, promise: EventLoopPromise<[HTTPTestResponse]>) {
        self.expected = expected
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(let buffer):
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            responses.append(HTTPTestResponse(
                status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }, body: body
            ))
            self.head = nil
            if responses.count == expected {
                promise.succeed(responses)
                context.close(promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(responses)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
