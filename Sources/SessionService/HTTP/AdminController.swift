import Foundation
import Hummingbird

/// The service's side of the API: sessions addressed by id, and all sessions of a user.
struct AdminController {
    typealias Context = SessionRequestContext
    let store: SessionStore

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("sessions/:id", use: read)
        group.delete("sessions/:id", use: revoke)
        group.get("users/:user/sessions", use: list)
        group.delete("users/:user/sessions", use: revokeAll)
    }

    /// Never slides the idle deadline: an administrator looking is not the user being active.
    @Sendable func read(_ request: Request, context: Context) async throws -> Response {
        guard let id = context.parameters.get("id").flatMap(SessionID.init(parsing:)) else {
            throw APIError.sessionNotFound
        }
        return JSONResponse.session(try await store.read(id, touch: false))
    }

    @Sendable func revoke(_ request: Request, context: Context) async throws -> Response {
        if let id = context.parameters.get("id").flatMap(SessionID.init(parsing:)) {
            try await store.delete(id)
        }
        return Response(status: .noContent)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let sessions = try await store.sessions(ofUser: try Self.user(context))
        var writer = JSONWriter(capacity: 64 + sessions.count * 320)
        writer.raw(#"{"sessions":["#)
        for (index, session) in sessions.enumerated() {
            if index > 0 { writer.raw(",") }
            session.writeJSON(to: &writer, includeData: false)
        }
        writer.raw("]}")
        return JSONResponse.make(.ok, writer.buffer)
    }

    @Sendable func revokeAll(_ request: Request, context: Context) async throws -> Response {
        let revoked = try await store.revokeAll(ofUser: try Self.user(context))
        var writer = JSONWriter()
        writer.raw(#"{"revoked":"#)
        writer.integer(Int64(revoked))
        writer.raw("}")
        return JSONResponse.make(.ok, writer.buffer)
    }

    /// The `{user}` path segment, percent-decoded (a user name may hold `/`, spaces, any UTF-8).
    private static func user(_ context: Context) throws -> String {
        guard let user = context.parameters.get("user")?.removingPercentEncoding else {
            throw APIError.invalidRequest("the user in the path is not valid percent-encoded UTF-8")
        }
        try SessionController.validateUser(user)
        return user
    }
}
