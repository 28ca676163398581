import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// sessiond's one HTTP/1.1 transport: hands each request, read whole, to Hummingbird's router (and
/// so to its middleware chain) as a task that runs on the connection's own event loop, and writes
/// the answer. Every route goes through here.
///
/// Why not Hummingbird's own connection loop: even with its task pinned to the event loop it costs
/// 12–15 µs of CPU more per request on the project's 2-core machine (its async inbound stream and
/// outbound writer), more than Redis spends on a session read. Here a request's task runs on the loop
/// that owns its socket (``EventLoopTaskExecutor``), and the Redis client answers on that same
/// loop's connection, so a request never changes thread. BENCHMARKS.md has the figures.
///
/// What it guarantees:
/// - Answers leave in the order their requests came (HTTP/1.1 pipelining). While a request is being
///   answered, what arrives after it is held; once something is held, the socket is not read further
///   until the held requests are answered, and nothing is answered while the channel is not writable,
///   so neither a pipelining client nor one that stops reading makes it buffer without bound.
/// - A client that half-closes (`shutdown(SHUT_WR)`) after its requests gets every answer, then the
///   connection is closed.
/// - `Connection: close` is answered, then the connection is closed, as is every answer while
///   sessiond drains (``Drain``); so is a request the decoder
///   refuses, after the answers owed before it: 400 `invalid_request` for bytes that are not HTTP,
///   414 `uri_too_long` or 431 `headers_too_large` for a head over the decoder's limits (80 KiB), 501
///   `not_implemented` for a method HTTP does not define.
/// - `HEAD` is answered wherever `GET` is, as `GET` would be (the same status, headers and
///   `Content-Length`), without the body.
/// - A body is kept up to `bodyLimit` + 1 bytes: the route that reads it then refuses it as too
///   large, and nothing beyond that is buffered.
///
/// Idle and graceful-shutdown closing are `HTTPConnectionStateHandler`'s, in front of this one.
///
/// Not generic over the responder on purpose: concrete types spare each request the runtime's
/// generic-metadata lookups (measured at ~3% of a GET's CPU).
final class HTTPResponderHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias Responder = RouterResponder<SessionRequestContext>
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// A request's head has come; its body is being read.
        case receiving(HTTPRequest, body: ByteBuffer)
        /// A whole request is with the router; nothing else is answered until its answer is written.
        case responding(HTTPRequest)
        /// The connection is closing: nothing more is read or answered.
        case closing

        var isClosing: Bool {
            if case .closing = self { return true }
            return false
        }

        /// Between requests or reading one: the next part of the input may be handled now.
        var takesInput: Bool {
            switch self {
            case .idle, .receiving: true
            case .responding, .closing: false
            }
        }
    }

    /// Something that arrived while an earlier request was unanswered, kept to be handled in order.
    private enum Held {
        case part(HTTPRequestPart)
        case refused(APIError)
    }

    private let responder: Responder
    private let logger: Logger
    private let serverName: String
    private let bodyLimit: Int
    private let requestLine: RequestLineWatcher
    private let drain: Drain
    private var state = State.idle
    private var held = CircularBuffer<Held>()
    private var inputClosed = false
    private var readWithheld = false
    private var executor: EventLoopTaskExecutor?
    private var inFlight: Task<Void, Never>?
    private var date = (second: Int64.min, text: "")

    /// - Parameter bodyLimit: the largest body any route accepts.
    /// - Parameter requestLine: the watcher in front of the decoder, which tells an over-long
    ///   target from over-large header fields.
    ///   - drain: while it drains, every answer closes its connection.
    init(responder: Responder, logger: Logger, serverName: String, bodyLimit: Int, requestLine: RequestLineWatcher, drain: Drain = Drain()) {
        self.responder = responder
        self.logger = logger
        self.serverName = serverName
        self.bodyLimit = bodyLimit
        self.requestLine = requestLine
        self.drain = drain
    }

    /// While answering, or with requests held, further input waits.
    private var isBusy: Bool {
        switch state {
        case .responding, .closing: true
        case .idle, .receiving: !held.isEmpty
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        executor = EventLoopTaskExecutor(context.eventLoop)
    }

    func channelInactive(context: ChannelHandlerContext) {
        state = .closing
        held.removeAll()
        inFlight?.cancel()
        inFlight = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if isBusy {
            held.append(.part(part))
        } else {
            process(part, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? HTTPParserError else {
            logger.debug("connection failed", metadata: ["error": "\(error)"])
            close(context: context)
            return
        }
        let refusal = refusal(of: error)
        if isBusy {
            held.append(.refused(refusal))
        } else {
            refuse(refusal, context: context)
        }
    }

    /// What a request the decoder refused is answered.
    private func refusal(of error: HTTPParserError) -> APIError {
        switch error {
        case .headerOverflow where requestLine.sawOverlongRequestLine:
            APIError(status: .uriTooLong, code: "uri_too_long", message: "the request target is longer than 80 KiB")
        case .headerOverflow:
            APIError(
                status: .requestHeaderFieldsTooLarge, code: "headers_too_large",
                message: "the request's header fields are larger than 80 KiB, or more than the decoder takes"
            )
        case .invalidMethod:
            APIError(status: .notImplemented, code: "not_implemented", message: "the request method is not one sessiond implements")
        default:
            APIError.invalidRequest("the request is not valid HTTP/1.1")
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        inputClosed = true
        resume(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { resume(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        // Only a client that sent more while waiting (pipelining), or one that does not read its
        // answers, is held back: stopping and restarting reads around every request would cost two
        // epoll_ctl calls a request.
        if !held.isEmpty || !context.channel.isWritable {
            readWithheld = true
        } else {
            context.read()
        }
    }

    // MARK: - Requests

    private func process(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.idle, .head(let head)):
            state = .receiving(head, body: ByteBuffer())
        case (.receiving(let head, var body), .body(var chunk)):
            // Past the limit by one byte is enough for the route to refuse it; the rest is dropped.
            let room = bodyLimit + 1 - body.readableBytes
            if room > 0, let kept = chunk.readSlice(length: min(room, chunk.readableBytes)) {
                if body.readableBytes == 0 {
                    body = kept  // a body in one piece (the usual case) is kept as read, not copied
                } else {
                    state = .idle  // so that `body` grows in place instead of being copied
                    body.writeImmutableBuffer(kept)
                }
                state = .receiving(head, body: body)
            }
        case (.receiving(let head, let body), .end):
            state = .responding(head)
            respond(to: head, body: body, context: context)
        case (.closing, _):
            break
        default:
            // The decoder never produces another order; treat it as a malformed request.
            refuse(.invalidRequest("the request is not valid HTTP/1.1"), context: context)
        }
    }

    private func respond(to head: HTTPRequest, body: ByteBuffer, context: ChannelHandlerContext) {
        // The connection's logger as it is: giving each request its own metadata would cost more
        // CPU than the rest of a /healthz answer, and the request log line names the request.
        let requestLogger = logger
        let requestContext = SessionRequestContext(source: .init(channel: context.channel, logger: requestLogger))
        // HEAD is routed as GET; `send` leaves the body out.
        var routed = head
        if routed.method == .head { routed.method = .get }
        let request = Request(head: routed, body: RequestBody(buffer: body))
        let responder = self.responder
        let loop = context.eventLoop
        let handler = NIOLoopBound((self, context), eventLoop: loop)
        let isHead = head.method == .head
        let streamTarget = StreamWriter(handler: handler, loop: loop)
        inFlight = Task(executorPreference: executor) {
            let answer: Answer?
            do {
                let response = try await responder.respond(to: request, context: requestContext)
                answer = try await streamTarget.answer(response, headOnly: isHead)
            } catch {
                requestLogger.error("a route failed outside the error middleware", metadata: ["error": "\(error)"])
                answer = Answer(status: .internalServerError)
            }
            // Streamed: written already.
            guard let answer else { return }
            if loop.inEventLoop {
                let (handler, context) = handler.value
                handler.send(answer, context: context)
            } else {
                loop.execute {
                    let (handler, context) = handler.value
                    handler.send(answer, context: context)
                }
            }
        }
    }

    // MARK: - Streams

    /// How long one piece of a stream may wait for the client to read before the connection closes.
    static let streamWriteTimeout = TimeAmount.seconds(10)

    /// Writes a stream's head (no `Content-Length`: the body is chunked); `false` when the request
    /// is no longer being answered (the connection closed).
    fileprivate func beginStream(_ response: Response, context: ChannelHandlerContext) -> Bool {
        guard case .responding = state else { return false }
        var headers = response.headers
        headers[.date] = currentDate()
        headers[.server] = serverName
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: response.status, headerFields: headers))), promise: nil)
        return true
    }

    /// Writes one piece of a stream and flushes it; fails when the connection is closed, or closes
    /// it when the client has not taken the piece within ``streamWriteTimeout``.
    fileprivate func writeStreamPiece(_ buffer: ByteBuffer, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        guard case .responding = state else { return context.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        let written = context.writeAndFlush(wrapOutboundOut(.body(buffer)))
        let channel = context.channel
        let timeout = context.eventLoop.scheduleTask(in: Self.streamWriteTimeout) { channel.close(promise: nil) }
        written.whenComplete { _ in timeout.cancel() }
        return written
    }

    /// Ends a stream and closes the connection.
    fileprivate func endStream(context: ChannelHandlerContext) {
        guard case .responding = state else { return }
        inFlight = nil
        state = .closing
        held.removeAll()
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    /// A response with its body read whole (every route's body is a buffer made in memory).
    fileprivate struct Answer: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields = [:]
        var body = ByteBuffer()

        init(status: HTTPResponse.Status) {
            self.status = status
        }

        /// An error of the API, in its JSON shape.
        init(_ error: APIError) {
            status = error.status
            headers = JSONResponse.headers(error.headers)
            body = error.body
        }

        init(_ response: Response) async throws {
            status = response.status
            headers = response.headers
            let collector = BodyCollector()
            try await response.body.write(collector)
            body = collector.buffer
        }
    }

    /// Writes the answer of the request being answered, then goes on with what was held.
    private func send(_ answer: consuming Answer, context: ChannelHandlerContext) {
        guard case .responding(let request) = state else { return }
        inFlight = nil
        // Draining (shutting down): the client's next request goes to another instance.
        let closeAfterwards = Self.asksToClose(request) || drain.isDraining
        write(answer, withBody: request.method != .head, closeAfterwards: closeAfterwards, context: context)
        if closeAfterwards {
            state = .closing
            return
        }
        state = .idle
        resume(context: context)
    }

    /// Writes and flushes one answer with its framing headers; with `closeAfterwards`, closes the
    /// connection once it is written.
    private func write(_ answer: consuming Answer, withBody: Bool, closeAfterwards: Bool, context: ChannelHandlerContext) {
        // Moved out of the answer, so that adding the framing fields does not copy them first (the
        // routes' answers leave room for these: ``JSONResponse/headers(_:)``).
        var headers = answer.headers
        answer.headers = [:]
        headers[.contentLength] = String(answer.body.readableBytes)
        headers[.date] = currentDate()
        headers[.server] = serverName
        if closeAfterwards { headers[.connection] = "close" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: answer.status, headerFields: headers))), promise: nil)
        if withBody, answer.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(answer.body)), promise: nil)
        }
        guard closeAfterwards else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Goes on with what was held while a request was unanswered, as far as it can now.
    private func resume(context: ChannelHandlerContext) {
        while state.takesInput, context.channel.isWritable, let next = held.popFirst() {
            switch next {
            case .part(let part): process(part, context: context)
            case .refused(let refusal): refuse(refusal, context: context)
            }
        }
        switch state {
        case .idle, .receiving:
            if held.isEmpty, inputClosed {
                // Half-closed: no further request can come, and none is owed an answer.
                close(context: context)
            } else if readWithheld, held.isEmpty, context.channel.isWritable {
                readWithheld = false
                context.read()
            }
        case .responding, .closing:
            break
        }
    }

    /// Answers a request the decoder refused, then closes: the stream cannot be trusted past it.
    private func refuse(_ refusal: APIError, context: ChannelHandlerContext) {
        guard !state.isClosing else { return }
        state = .closing
        held.removeAll()
        write(Answer(refusal), withBody: true, closeAfterwards: true, context: context)
    }

    private func close(context: ChannelHandlerContext) {
        guard !state.isClosing else { return }
        state = .closing
        held.removeAll()
        context.close(promise: nil)
    }

    /// `Connection: close` among the request's connection options (a comma-separated list).
    private static func asksToClose(_ request: HTTPRequest) -> Bool {
        request.headerFields[values: .connection].contains { value in
            value.split(separator: ",").contains { $0.trimmingWhitespace().lowercased() == "close" }
        }
    }

    /// The `Date` header, made at most once a second per connection.
    private func currentDate() -> String {
        let now = Int64(Date().timeIntervalSince1970)
        if now != date.second { date = (now, Timestamp.httpDate(secondsSinceEpoch: now)) }
        return date.text
    }
}

/// Writes a response whose body does not end by itself (``Response/isStream``: Server-Sent Events)
/// as it is made, then closes the connection. Each piece is written and flushed before the next is
/// made, so a client that reads slowly holds up its stream, never sessiond's memory; one that reads
/// nothing for ``HTTPResponderHandler/streamWriteTimeout`` is closed.
private struct StreamWriter: ResponseBodyWriter {
    let handler: NIOLoopBound<(HTTPResponderHandler, ChannelHandlerContext)>
    let loop: any EventLoop

    /// The response read whole, or `nil` once it has been streamed. A stream's `HEAD` is its head alone.
    func answer(_ response: Response, headOnly: Bool) async throws -> HTTPResponderHandler.Answer? {
        guard response.isStream else { return try await HTTPResponderHandler.Answer(response) }
        guard !headOnly else {
            var answer = HTTPResponderHandler.Answer(status: response.status)
            answer.headers = response.headers
            return answer
        }
        await stream(response)
        return nil
    }

    private func stream(_ response: Response) async {
        let started = loop.submit {
            let (handler, context) = handler.value
            return handler.beginStream(response, context: context)
        }
        guard (try? await started.get()) == true else { return }
        try? await response.body.write(self)
        loop.execute {
            let (handler, context) = handler.value
            handler.endStream(context: context)
        }
    }

    func write(_ buffer: ByteBuffer) async throws {
        try await loop.flatSubmit {
            let (handler, context) = handler.value
            return handler.writeStreamPiece(buffer, context: context)
        }.get()
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

extension Response {
    /// A response whose body is written as it is made and ends the connection: Server-Sent Events.
    var isStream: Bool { headers[.contentType] == "text/event-stream" }
}

/// Collects a response body in memory.
private final class BodyCollector: ResponseBodyWriter {
    var buffer = ByteBuffer()

    func write(_ buffer: ByteBuffer) async throws {
        if self.buffer.readableBytes == 0 {
            self.buffer = buffer
        } else {
            self.buffer.writeImmutableBuffer(buffer)
        }
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
