import Hummingbird

extension Session {
    /// The session object of the API; `data` is left out of list entries.
    func writeJSON(to writer: inout JSONWriter, includeData: Bool = true) {
        writer.raw("{")
        writer.key("id", first: true)
        writer.string(id.hex)
        writer.key("user")
        if let user { writer.string(user) } else { writer.raw("null") }
        writer.key("device")
        writer.raw(device ?? Device.none)
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
        writer.key("authenticated_at")
        writer.timestamp(milliseconds: authenticatedAt)
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

/// JSON responses of the API (``ResponseHeadersMiddleware`` adds what every response carries).
enum JSONResponse {
    static func make(_ status: HTTPResponse.Status = .ok, _ body: ByteBuffer, headers: HTTPFields = [:]) -> Response {
        Response(status: status, headers: self.headers(headers), body: .init(byteBuffer: body))
    }

    /// `headers` with the JSON content type, with room for the fields every answer gets on its way
    /// out (``ResponseHeadersMiddleware``'s two, then `Content-Length`, `Date`, `Server` and perhaps
    /// `Connection`), so that adding them never grows the array: one allocation for the answer's fields.
    static func headers(_ headers: HTTPFields) -> HTTPFields {
        var fields = HTTPFields()
        fields.reserveCapacity(headers.count + 7)
        fields.append(contentsOf: headers)
        fields[.contentType] = "application/json"
        return fields
    }

    static func session(_ session: Session, status: HTTPResponse.Status = .ok) -> Response {
        // The object without data is ~340 bytes (id, user, device, version, five timestamps); one buffer for it
        // and a few hundred bytes of data, without growing.
        var writer = JSONWriter(capacity: 768)
        session.writeJSON(to: &writer)
        return make(status, writer.buffer, headers: [.eTag: session.eTag])
    }

    /// `{"sessions": [...]}`: list entries, without data.
    static func sessionList(_ sessions: [Session]) -> Response {
        var writer = JSONWriter(capacity: 64 + sessions.count * 400)
        writer.raw(#"{"sessions":["#)
        for (index, session) in sessions.enumerated() {
            if index > 0 { writer.raw(",") }
            session.writeJSON(to: &writer, includeData: false)
        }
        writer.raw("]}")
        return make(.ok, writer.buffer)
    }

    /// `{"revoked": n}`.
    static func revoked(_ count: Int) -> Response {
        var writer = JSONWriter()
        writer.raw(#"{"revoked":"#)
        writer.integer(Int64(count))
        writer.raw("}")
        return make(.ok, writer.buffer)
    }

    /// `{"token": …, "session": …}` for creation and rotation.
    static func tokenAndSession(_ token: SessionToken, _ session: Session, status: HTTPResponse.Status) -> Response {
        var writer = JSONWriter(capacity: 768 + 96)
        writer.raw(#"{"token":"#)
        writer.string(token.text)
        writer.raw(#","session":"#)
        session.writeJSON(to: &writer)
        writer.raw("}")
        return make(status, writer.buffer, headers: [.eTag: session.eTag])
    }
}
