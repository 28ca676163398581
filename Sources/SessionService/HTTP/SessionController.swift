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
        group.get("session/others", use: others)
        group.delete("session/others", use: revokeOthers)
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        var user: String?
        var device: [UInt8]?
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
            case "device":
                device = try Device.json(from: member)
            case "idle_timeout":
                idleTimeout = try Self.timeout(member)
            case "absolute_timeout":
                absoluteTimeout = try Self.timeout(member)
            default:
                throw APIError.invalidRequest("unknown member '\(member.name)'; expected user, device, data, idle_timeout, absolute_timeout")
            }
        }
        let (token, session) = try await store.create(
            user: user, device: device, data: data, idleTimeout: idleTimeout, absoluteTimeout: absoluteTimeout
        )
        return JSONResponse.tokenAndSession(token, session, status: .created)
    }

    /// `GET /v1/session[?touch=false][&max_auth_age=<seconds>]`.
    @Sendable func read(_ request: Request, context: Context) async throws -> Response {
        var touch = true
        var maxAuthAge: Int64?
        if request.uri.query != nil {
            let query = request.uri.queryParameters
            switch query["touch"] {
            case nil, "true", "1": touch = true
            case "false", "0": touch = false
            case let other?: throw APIError.invalidRequest("touch must be true or false, not '\(other)'")
            }
            if let text = query["max_auth_age"] {
                guard let seconds = Int64(String(text)), (0...Int64(Self.maximumTimeoutSeconds)).contains(seconds) else {
                    throw APIError.invalidRequest("max_auth_age must be whole seconds from 0 to \(Self.maximumTimeoutSeconds)")
                }
                maxAuthAge = seconds * 1000
            }
        }
        let token = try Self.token(request.headers)
        return JSONResponse.session(try await store.read(token, touch: touch, maxAuthAge: maxAuthAge))
    }

    /// `PATCH /v1/session`: sets or deletes (`null`) the attributes named, leaves the rest.
    @Sendable func patch(_ request: Request, context: Context) async throws -> Response {
        let token = try Self.token(request.headers)
        let ifMatch = try Self.ifMatch(request.headers)
        let changes = try await body.members(of: request).map { Session.Attribute(name: $0.name, raw: $0.raw) }
        return JSONResponse.session(try await store.patch(token, changes: changes, ifMatch: ifMatch))
    }

    @Sendable func replaceData(_ request: Request, context: Context) async throws -> Response {
        let token = try Self.token(request.headers)
        let ifMatch = try Self.ifMatch(request.headers)
        let data = try await body.members(of: request).map { Session.Attribute(name: $0.name, raw: $0.raw) }
        return JSONResponse.session(try await store.replaceData(token, data: data, ifMatch: ifMatch))
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        guard let header = request.headers[Self.tokenHeader] else { throw APIError.missingSessionToken }
        // Idempotent: a malformed or unknown token has nothing to end.
        if let token = SessionToken(parsing: header) {
            try await store.delete(token)
        }
        return Response(status: .noContent)
    }

    /// `POST /v1/session/rotate`, body optional: `{"grace_seconds": 0-60, "reauthenticated": bool}`.
    @Sendable func rotate(_ request: Request, context: Context) async throws -> Response {
        let token = try Self.token(request.headers)
        var graceSeconds: Int?
        var reauthenticated = false
        for member in try await body.members(of: request, allowEmpty: true) {
            switch member.name {
            case "grace_seconds":
                if member.isNull { continue }
                let maximum = SessionServiceConfiguration.maximumRotationGrace
                guard let seconds = Self.wholeNumber(member.raw), (0...maximum).contains(seconds) else {
                    throw APIError.invalidRequest("'grace_seconds' must be whole seconds from 0 to \(maximum)")
                }
                graceSeconds = seconds
            case "reauthenticated":
                switch String(decoding: member.raw, as: UTF8.self) {
                case "true": reauthenticated = true
                case "false", "null": reauthenticated = false
                default: throw APIError.invalidRequest("'reauthenticated' must be true or false")
                }
            default:
                throw APIError.invalidRequest("unknown member '\(member.name)'; expected grace_seconds, reauthenticated")
            }
        }
        let (newToken, session) = try await store.rotate(token, graceSeconds: graceSeconds, reauthenticated: reauthenticated)
        return JSONResponse.tokenAndSession(newToken, session, status: .ok)
    }

    /// `GET /v1/session/others`: the other live sessions of the token's user, oldest first, without data.
    @Sendable func others(_ request: Request, context: Context) async throws -> Response {
        let session = try await store.read(try Self.token(request.headers), touch: false)
        guard let user = session.user else { return JSONResponse.sessionList([]) }
        return JSONResponse.sessionList(try await store.sessions(ofUser: user).filter { $0.id != session.id })
    }

    /// `DELETE /v1/session/others`: signs the user out everywhere but here.
    @Sendable func revokeOthers(_ request: Request, context: Context) async throws -> Response {
        let session = try await store.read(try Self.token(request.headers), touch: false)
        guard let user = session.user else { return JSONResponse.revoked(0) }
        return JSONResponse.revoked(try await store.revokeAll(ofUser: user, except: session.id, reason: .others))
    }

    // MARK: - Input

    /// The request's token. A malformed token is an unknown session.
    static func token(_ headers: HTTPFields) throws -> SessionToken {
        guard let header = headers[tokenHeader] else { throw APIError.missingSessionToken }
        guard let token = SessionToken(parsing: header) else { throw APIError.sessionNotFound }
        return token
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

    /// Whole seconds, 1 to ten years; fractions and anything else are refused.
    static func timeout(_ member: JSONScanner.Member) throws -> Int? {
        if member.isNull { return nil }
        guard let value = wholeNumber(member.raw), (1...maximumTimeoutSeconds).contains(value) else {
            throw APIError.invalidRequest("'\(member.name)' must be whole seconds from 1 to \(maximumTimeoutSeconds)")
        }
        return value
    }

    /// A non-negative JSON number with an integral value (`60`, `60.0`, `6e1`, as JSON Schema's
    /// `integer` counts them), up to ten years of seconds; `nil` for anything else.
    static func wholeNumber(_ raw: [UInt8]) -> Int? {
        guard raw.first.map({ (48...57).contains($0) }) == true, let value = Double(String(decoding: raw, as: UTF8.self)),
            value.rounded() == value, value <= Double(maximumTimeoutSeconds)
        else { return nil }
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
