import HTTPTypes
import Hummingbird

/// The end user's side of the API: everything addressed by the `X-Session-Token` header.
struct SessionController {
    typealias Context = SessionRequestContext
    static let tokenHeader = HTTPField.Name("X-Session-Token")!
    /// The longest user name accepted, in UTF-8 bytes.
    static let maximumUserBytes = 256
    /// The longest timeout accepted (ten years, in seconds); keeps millisecond arithmetic far from overflow.
    static let maximumTimeoutSeconds = 315_360_000

    let store: SessionStore
    let body: JSONBody

    func addRoutes(to group: RouterGroup<Context>) {
        group.post("sessions", use: create)
        group.get("session", use: read)
        group.patch("session", use: patch)
        group.put("session/data", use: replaceData)
        group.delete("session", use: delete)
        group.post("session/rotate", use: rotate)
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        var user: String?
        var data: [Session.Attribute] = []
        var idleTimeout: Int?
        var absoluteTimeout: Int?
        for member in try await body.members(of: request, allowEmpty: true) {
            switch member.name {
            case "user":
                user = try Self.user(member)
            case "data":
                if member.isNull { continue }
                guard member.isObject else { throw APIError.invalidRequest("'data' must be a JSON object") }
                data = try Self.attributes(ofObject: member.raw)
            case "idle_timeout":
                idleTimeout = try Self.timeout(member)
            case "absolute_timeout":
                absoluteTimeout = try Self.timeout(member)
            default:
                throw APIError.invalidRequest("unknown member '\(member.name)'; expected user, data, idle_timeout, absolute_timeout")
            }
        }
        let (token, session) = try await store.create(
            user: user, data: data, idleTimeout: idleTimeout, absoluteTimeout: absoluteTimeout
        )
        return JSONResponse.tokenAndSession(token, session, status: .created)
    }

    /// `GET /v1/session[?touch=false]`.
    @Sendable func read(_ request: Request, context: Context) async throws -> Response {
        let touch: Bool
        switch request.uri.query == nil ? nil : request.uri.queryParameters["touch"] {
        case nil, "true", "1": touch = true
        case "false", "0": touch = false
        case let other?: throw APIError.invalidRequest("touch must be true or false, not '\(other)'")
        }
        let id = try Self.sessionID(request.headers)
        return JSONResponse.session(try await store.read(id, touch: touch))
    }

    /// `PATCH /v1/session`: sets or deletes (`null`) the attributes named, leaves the rest.
    @Sendable func patch(_ request: Request, context: Context) async throws -> Response {
        let id = try Self.sessionID(request.headers)
        let ifMatch = try Self.ifMatch(request.headers)
        let changes = try await body.members(of: request).map { Session.Attribute(name: $0.name, raw: $0.raw) }
        return JSONResponse.session(try await store.patch(id, changes: changes, ifMatch: ifMatch))
    }

    @Sendable func replaceData(_ request: Request, context: Context) async throws -> Response {
        let id = try Self.sessionID(request.headers)
        let ifMatch = try Self.ifMatch(request.headers)
        let data = try await body.members(of: request).map { Session.Attribute(name: $0.name, raw: $0.raw) }
        return JSONResponse.session(try await store.replaceData(id, data: data, ifMatch: ifMatch))
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        guard let header = request.headers[Self.tokenHeader] else { throw APIError.missingSessionToken }
        // Idempotent: a malformed or unknown token has nothing to end.
        if let token = SessionToken(parsing: header) {
            try await store.delete(token.id)
        }
        return Response(status: .noContent)
    }

    @Sendable func rotate(_ request: Request, context: Context) async throws -> Response {
        let id = try Self.sessionID(request.headers)
        let (token, session) = try await store.rotate(id)
        return JSONResponse.tokenAndSession(token, session, status: .ok)
    }

    // MARK: - Input

    /// The session id behind the request's token. A malformed token is an unknown session.
    static func sessionID(_ headers: HTTPFields) throws -> SessionID {
        guard let header = headers[tokenHeader] else { throw APIError.missingSessionToken }
        guard let token = SessionToken(parsing: header) else { throw APIError.sessionNotFound }
        return token.id
    }

    static func ifMatch(_ headers: HTTPFields) throws -> IfMatch? {
        let values = headers[values: .ifMatch]
        guard !values.isEmpty else { return nil }
        guard let condition = IfMatch(header: values.joined(separator: ",")) else {
            throw APIError.invalidRequest("If-Match must be \"*\" or quoted versions such as \"3\"")
        }
        return condition
    }

    static func user(_ member: JSONScanner.Member) throws -> String? {
        if member.isNull { return nil }
        guard let name = JSONScanner.decodedString(member.raw) else {
            throw APIError.invalidRequest("'user' must be a string")
        }
        try validateUser(name)
        return name
    }

    static func validateUser(_ name: String) throws {
        guard (1...maximumUserBytes).contains(name.utf8.count) else {
            throw APIError.invalidRequest("a user must be 1 to \(maximumUserBytes) bytes of UTF-8")
        }
    }

    /// Whole seconds, 1 to ten years. Any JSON number with an integral value counts (`60`, `60.0`,
    /// `6e1`), as JSON Schema's `integer` does; fractions and anything else are refused.
    static func timeout(_ member: JSONScanner.Member) throws -> Int? {
        if member.isNull { return nil }
        let text = String(decoding: member.raw, as: UTF8.self)
        guard member.raw.first.map({ (48...57).contains($0) }) == true, let value = Double(text),
            value.rounded() == value, value >= 1, value <= Double(maximumTimeoutSeconds)
        else {
            throw APIError.invalidRequest("'\(member.name)' must be whole seconds from 1 to \(maximumTimeoutSeconds)")
        }
        return Int(value)
    }

    static func attributes(ofObject raw: [UInt8]) throws -> [Session.Attribute] {
        do {
            return try JSONScanner.members(of: raw).map { Session.Attribute(name: $0.name, raw: $0.raw) }
        } catch {
            throw JSONBody.apiError(error)
        }
    }
}
