import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /v1/events`: session lifecycle events by cursor, as one JSON page (long-polled with
/// `wait`) or, with `Accept: text/event-stream`, as Server-Sent Events (see ``SessionEvents``).
struct EventsController {
    typealias Context = SessionRequestContext
    /// `nil` when events are off (`SESSIOND_EVENTS_RETENTION=0`).
    let events: SessionEvents?

    static let limits = 1...1000
    static let defaultLimit = 100
    static let waits = 0...30
    /// A comment line at least this often keeps an idle stream (and the proxies on its way) alive.
    static let keepAliveInterval = Duration.seconds(15)

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("events", use: read)
    }

    @Sendable func read(_ request: Request, context: Context) async throws -> Response {
        guard let events else { throw APIError.eventsDisabled }
        let query = request.uri.queryParameters
        let limit = try Self.integer(query["limit"].map(String.init), name: "limit", in: Self.limits) ?? Self.defaultLimit
        let wait = try Self.integer(query["wait"].map(String.init), name: "wait", in: Self.waits) ?? 0
        var after = try Self.cursor(query["after"].map(String.init), name: "after")
        // `Last-Event-ID` (what a reconnecting EventSource sends) wins over `after`.
        if let lastEventID = request.headers[.lastEventID] { after = try Self.cursor(lastEventID, name: "Last-Event-ID") ?? after }
        let streaming = request.headers[values: .accept].contains { $0.contains("text/event-stream") }
        guard streaming else {
            events.consumerStarted()
            defer { events.consumerEnded() }
            let page = try await events.read(after: after, limit: limit, wait: .seconds(wait))
            return JSONResponse.make(.ok, Self.json(page))
        }
        // The first page is read before the stream starts, so a bad or expired cursor is answered
        // as JSON with its status.
        let first = try await events.read(after: after, limit: limit, wait: .zero)
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream"],
            body: ResponseBody { writer in
                events.consumerStarted()
                defer { events.consumerEnded() }
                var page = first
                // The stream opens with a comment, so the client sees it is connected at once.
                try await writer.write(ByteBuffer(string: ": sessiond events\n\n"))
                while true {
                    if !page.events.isEmpty { try await writer.write(Self.serverSentEvents(page)) }
                    if events.isStopping || Task.isCancelled { break }
                    let next = try await events.read(after: page.next, limit: limit, wait: Self.keepAliveInterval)
                    if next.events.isEmpty, !events.isStopping { try await writer.write(ByteBuffer(string: ": keep-alive\n\n")) }
                    page = next
                }
                try await writer.finish(nil)
            }
        )
    }

    /// `{"events":[…],"next":"…"}`.
    static func json(_ page: EventPage) -> ByteBuffer {
        var writer = JSONWriter(capacity: 64 + page.events.reduce(0) { $0 + $1.json.readableBytes + 1 })
        writer.raw(#"{"events":["#)
        for (index, event) in page.events.enumerated() {
            if index > 0 { writer.raw(",") }
            writer.raw(event.json)
        }
        writer.raw(#"],"next":"#)
        writer.string(page.next.description)
        writer.raw("}")
        return writer.buffer
    }

    /// Each event as `id: <cursor after it>`, `event: <type>`, `data: <JSON>` and a blank line.
    static func serverSentEvents(_ page: EventPage) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(page.events.reduce(0) { $0 + $1.json.readableBytes + 80 })
        for event in page.events {
            buffer.writeString("id: \(event.cursor)\nevent: \(event.type.name)\ndata: ")
            buffer.writeImmutableBuffer(event.json)
            buffer.writeString("\n\n")
        }
        return buffer
    }

    /// A query parameter that must be a whole number in `range`; `nil` when absent.
    private static func integer(_ text: String?, name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw APIError.invalidParameter("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// A cursor as given (`nil` when absent or empty).
    private static func cursor(_ text: String?, name: String) throws -> EventCursor? {
        guard let text, !text.isEmpty else { return nil }
        guard let cursor = EventCursor(text) else {
            throw APIError.invalidCursor("\(name) is not a cursor sessiond gave out (pass `next` or an event's SSE `id` as it came)")
        }
        return cursor
    }
}

extension HTTPField.Name {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}
