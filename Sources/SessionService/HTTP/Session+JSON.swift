import Hummingbird

extension Session {
    /// The session object of the API; `data` is left out of list entries.
    func writeJSON(to writer: inout JSONWriter, includeData: Bool = true) {
        writer.raw("{")
        writer.key("id", first: true)
        writer.string(id.hex)
        writer.key("user")
        if let user { writer.string(user) } else { writer.raw("null") }
        if includeData {
            writer.key("data")
            writer.raw("{")
            for (index, attribute) in data.enumerated() {
                writer.key(attribute.name, first: index == 0)
                writer.raw(attribute.raw)
            }
            writer.raw("}")
        }
        writer.key("version")
        writer.integer(version)
        writer.key("created_at")
        writer.timestamp(milliseconds: createdAt)
        writer.key("last_seen_at")
        writer.timestamp(milliseconds: lastSeenAt)
        writer.key("expires_at")
        writer.timestamp(milliseconds: expiresAt)
        writer.key("absolute_expires_at")
        writer.timestamp(milliseconds: absoluteExpiresAt)
        writer.raw("}")
    }

    /// The strong ETag of this version.
    var eTag: String { "\"\(version)\"" }
}

/// A response whole in memory. Hummingbird's routes return it as a ``Response``; the event-loop
/// routes (``EventLoopRoutes``) write it to the channel themselves.
struct BufferedResponse: Sendable {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer

    var response: Response { Response(status: status, headers: headers, body: .init(byteBuffer: body)) }
}

/// JSON responses of the API. Everything under /v1 is private to its caller: never cached.
enum JSONResponse {
    static func make(_ status: HTTPResponse.Status = .ok, _ body: ByteBuffer, headers: HTTPFields = [:]) -> BufferedResponse {
        var headers = headers
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return BufferedResponse(status: status, headers: headers, body: body)
    }

    static func session(_ session: Session, status: HTTPResponse.Status = .ok) -> BufferedResponse {
        var writer = JSONWriter(capacity: 512)
        session.writeJSON(to: &writer)
        return make(status, writer.buffer, headers: [.eTag: session.eTag])
    }

    /// `{"token": …, "session": …}` for creation and rotation.
    static func tokenAndSession(_ token: SessionToken, _ session: Session, status: HTTPResponse.Status) -> BufferedResponse {
        var writer = JSONWriter(capacity: 600)
        writer.raw(#"{"token":"#)
        writer.string(token.text)
        writer.raw(#","session":"#)
        session.writeJSON(to: &writer)
        writer.raw("}")
        return make(status, writer.buffer, headers: [.eTag: session.eTag])
    }
}
