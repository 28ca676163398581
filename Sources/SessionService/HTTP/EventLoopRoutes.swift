import Foundation
import HummingbirdCore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTPTypes

/// The requests a session store serves most — `GET /healthz`, `GET` and `PATCH /v1/session` —
/// answered on the event loop that owns the connection; every other request goes on to
/// Hummingbird's router.
///
/// Why: on the project's 2-core machine Hummingbird's per-request machinery (the connection's async
/// streams and writer, the responder and middleware chain) costs ~25 µs of CPU per request, more
/// than webdis spends on a whole GET. Here a request is a task that runs on the connection's event
/// loop (``EventLoopTaskExecutor``), and the Redis client sends its command over that loop's
/// connection, so a session GET never changes thread. BENCHMARKS.md has the figures.
///
/// These routes do what the middleware does for Hummingbird's routes — API key check, the JSON error
/// shape, `X-Sessiond-Instance`, metrics, the request log line — with the same functions.
struct EventLoopRoutes: Sendable {
    enum Route: Sendable {
        case health, readSession, patchSession

        /// The route label of the metrics, as Hummingbird's router names its routes.
        var pattern: String {
            switch self {
            case .health: "/healthz"
            case .readSession, .patchSession: "/v1/session"
            }
        }
    }

    let sessions: SessionController
    /// `nil` when no API keys are configured.
    let apiKeys: APIKeyMiddleware?
    let metrics: ServiceMetrics
    let instance: String
    let logger: Logger

    /// The body limit of `PATCH /v1/session`.
    var bodyLimit: Int { sessions.body.limit }

    /// The route a request names, or `nil` for one Hummingbird's router serves. Paths match by their
    /// non-empty segments, as the router matches them (`/healthz/` is `/healthz`).
    static func route(of request: HTTPRequest) -> Route? {
        guard request.method == .get || request.method == .patch, let target = request.path else { return nil }
        let path = target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target[..<$0] } ?? target[...]
        let segments = path.split(separator: "/")
        if segments.count == 2, segments[0] == "v1", segments[1] == "session" {
            return request.method == .get ? .readSession : .patchSession
        }
        if segments.count == 1, segments[0] == "healthz", request.method == .get { return .health }
        return nil
    }

    /// Answers `GET /healthz` at once: it needs neither Redis nor a task.
    func respondAlive(_ request: HTTPRequest) -> BufferedResponse {
        finish(HealthController.alive, route: .health, request, since: .now, logger: nil)
    }

    /// Answers a session request. Never throws: a failure is answered with the API's JSON error.
    func respond(to route: Route, _ request: HTTPRequest, body: ByteBuffer, bodyTooLarge: Bool) async -> BufferedResponse {
        let started = ContinuousClock.now
        let target = request.path ?? "/"
        var response: BufferedResponse
        var requestLogger: Logger?
        do {
            switch route {
            case .health:
                response = HealthController.alive
            case .readSession:
                try apiKeys?.authorize(request.headerFields)
                let touch = target.utf8.contains(UInt8(ascii: "?")) ? URI(target).queryParameters["touch"] : nil
                response = try await sessions.read(headers: request.headerFields, touchParameter: touch)
            case .patchSession:
                try apiKeys?.authorize(request.headerFields)
                response = try await sessions.patch(headers: request.headerFields, body: body, bodyTooLarge: bodyTooLarge)
            }
        } catch {
            requestLogger = Self.requestLogger(logger)
            response = ErrorMiddleware.apiError(for: error, path: URI(target).path, logger: requestLogger!).bufferedResponse
        }
        return finish(response, route: route, request, since: started, logger: requestLogger)
    }

    /// What the middleware does for Hummingbird's routes: the instance header, metrics, the log line.
    private func finish(
        _ response: BufferedResponse, route: Route, _ request: HTTPRequest, since started: ContinuousClock.Instant,
        logger requestLogger: Logger?
    ) -> BufferedResponse {
        var response = response
        response.headers[InstanceHeaderMiddleware.header] = instance
        metrics.recordRequest(method: request.method, route: route.pattern, status: response.status, duration: .now - started)
        ErrorMiddleware.logRequest(
            method: request.method, path: URI(request.path ?? "/").path, status: response.status, since: started,
            logger: requestLogger ?? Self.requestLogger(logger), level: logger.logLevel
        )
        return response
    }

    /// The logger with a request id, as Hummingbird gives its routes.
    private static func requestLogger(_ logger: Logger) -> Logger {
        var logger = logger
        logger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
        return logger
    }
}

/// Runs a task's jobs on one event loop, so that a request's task, its connection and its Redis
/// connection share one thread.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// Sits in each connection's pipeline after HTTP decoding, in front of Hummingbird: answers the
/// ``EventLoopRoutes`` itself and passes every other request through.
///
/// Responses leave in the order their requests came, as HTTP/1.1 requires: while a request is
/// unanswered (by this handler or by Hummingbird), the requests after it are held until the answer
/// has been written, and once one is held the socket is not read further (backpressure) until then.
/// A graceful shutdown, or an HTTP parse error, reaching it while it answers waits for that answer too.
final class EventLoopRouteHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// Reading an event-loop route's request; its body is kept up to the limit.
        case receiving(EventLoopRoutes.Route, HTTPRequest, body: ByteBuffer, tooLarge: Bool)
        /// Waiting for an event-loop route's answer.
        case answering(closeAfterwards: Bool)
        /// A request handed to Hummingbird.
        case forwarding(requestEnded: Bool, responseEnded: Bool)
    }

    /// Something that arrived while an earlier request was unanswered.
    private enum Held {
        case part(HTTPRequestPart)
        case error(any Error)
    }

    private let routes: EventLoopRoutes
    private let serverName: String
    private var state = State.idle
    private var held = CircularBuffer<Held>()
    private var readWithheld = false
    private var quiesceWithheld = false
    private var isActive = true
    private var executor: EventLoopTaskExecutor?
    private var date = (second: Int64.min, text: "")

    init(routes: EventLoopRoutes, serverName: String) {
        self.routes = routes
        self.serverName = serverName
    }

    /// An answer is owed before the next request may start.
    private var isAwaitingResponse: Bool {
        switch state {
        case .answering: true
        case .forwarding(let requestEnded, let responseEnded): requestEnded && !responseEnded
        case .idle, .receiving: false
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        executor = EventLoopTaskExecutor(context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        isActive = false
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if isAwaitingResponse || !held.isEmpty {
            held.append(.part(part))
        } else {
            process(part, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if isAwaitingResponse || !held.isEmpty {
            held.append(.error(error))
        } else {
            pass(error, context: context)
        }
    }

    private func pass(_ error: any Error, context: ChannelHandlerContext) {
        // A parse error in the middle of an event-loop route's request: that request will never be
        // complete; Hummingbird answers the error (400) and closes.
        if case .receiving = state { state = .idle }
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch state {
        case .receiving, .answering:
            // Hummingbird would close a connection it thinks idle at once: let the answer go first.
            if event is ChannelShouldQuiesceEvent {
                quiesceWithheld = true
                return
            }
        case .idle, .forwarding:
            break
        }
        context.fireUserInboundEventTriggered(event)
    }

    func read(context: ChannelHandlerContext) {
        // Only a client that sent more while waiting (pipelining) is held back: stopping and
        // restarting reads around every answer would cost two epoll_ctl calls a request.
        if !held.isEmpty {
            readWithheld = true
        } else {
            context.read()
        }
    }

    /// Hummingbird's answers pass here; the end of one lets the next request start.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        guard case .end = unwrapOutboundIn(data), case .forwarding(let requestEnded, false) = state else { return }
        if requestEnded {
            state = .idle
            // Not from inside Hummingbird's write: the next request starts on the next tick.
            let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.execute {
                let (handler, context) = handler.value
                handler.resume(context: context)
            }
        } else {
            state = .forwarding(requestEnded: false, responseEnded: true)
        }
    }

    private func process(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.idle, .head(let request)):
            if let route = EventLoopRoutes.route(of: request) {
                state = .receiving(route, request, body: ByteBuffer(), tooLarge: false)
            } else {
                state = .forwarding(requestEnded: false, responseEnded: false)
                context.fireChannelRead(wrapInboundOut(part))
            }
        case (.receiving(let route, let request, var body, var tooLarge), .body(let chunk)):
            // Only a PATCH body is used; a GET's is read and dropped, as Hummingbird does.
            if route == .patchSession, !tooLarge {
                if body.readableBytes + chunk.readableBytes > routes.bodyLimit {
                    tooLarge = true
                    body = ByteBuffer()
                } else {
                    body.writeImmutableBuffer(chunk)
                }
            }
            state = .receiving(route, request, body: body, tooLarge: tooLarge)
        case (.receiving(let route, let request, let body, let tooLarge), .end):
            state = .answering(closeAfterwards: Self.asksToClose(request))
            answer(route, request, body: body, tooLarge: tooLarge, context: context)
        case (.forwarding(false, let responseEnded), .end):
            context.fireChannelRead(wrapInboundOut(part))
            state = responseEnded ? .idle : .forwarding(requestEnded: true, responseEnded: false)
        default:
            // The rest of a forwarded request, or anything the decoder should never produce: Hummingbird's.
            context.fireChannelRead(wrapInboundOut(part))
        }
    }

    private func answer(_ route: EventLoopRoutes.Route, _ request: HTTPRequest, body: ByteBuffer, tooLarge: Bool, context: ChannelHandlerContext) {
        if route == .health {
            send(routes.respondAlive(request), context: context)
            return
        }
        let routes = self.routes
        let loop = context.eventLoop
        let handler = NIOLoopBound((self, context), eventLoop: loop)
        Task(executorPreference: executor) {
            let response = await routes.respond(to: route, request, body: body, bodyTooLarge: tooLarge)
            if loop.inEventLoop {
                let (handler, context) = handler.value
                handler.send(response, context: context)
            } else {
                loop.execute {
                    let (handler, context) = handler.value
                    handler.send(response, context: context)
                }
            }
        }
    }

    private func send(_ response: BufferedResponse, context: ChannelHandlerContext) {
        guard case .answering(let closeAfterwards) = state, isActive else { return }
        var headers = response.headers
        headers[.contentLength] = String(response.body.readableBytes)
        headers[.date] = currentDate()
        headers[.server] = serverName
        if closeAfterwards { headers[.connection] = "close" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: response.status, headerFields: headers))), promise: nil)
        if response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(response.body)), promise: nil)
        }
        state = .idle
        if closeAfterwards {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if quiesceWithheld {
            quiesceWithheld = false
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        resume(context: context)
    }

    /// Goes on with what was held while a request was unanswered.
    private func resume(context: ChannelHandlerContext) {
        var replayed = false
        while isActive, !isAwaitingResponse, let next = held.popFirst() {
            replayed = true
            switch next {
            case .part(let part): process(part, context: context)
            case .error(let error): pass(error, context: context)
            }
        }
        // Hummingbird's async channel hands what it read to its request loop at read-complete.
        if replayed { context.fireChannelReadComplete() }
        if readWithheld, held.isEmpty {
            readWithheld = false
            context.read()
        }
    }

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
