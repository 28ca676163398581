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
        return JSONResponse.session(try await store.read(id))
    }

    @Sendable func revoke(_ request: Request, context: Context) async throws -> Response {
        if let id = context.parameters.get("id").flatMap(SessionID.init(parsing:)) {
            try await store.delete(id)
        }
        return Response(status: .noContent)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        JSONResponse.sessionList(try await store.sessions(ofUser: try Self.user(context)))
    }

    /// `DELETE /v1/users/{user}/sessions[?except=<id>]`: every session of the user, but the one named.
    @Sendable func revokeAll(_ request: Request, context: Context) async throws -> Response {
        var kept: SessionID?
        if request.uri.query != nil, let text = request.uri.queryParameters["except"] {
            guard let id = SessionID(parsing: text) else {
                throw APIError.invalidRequest("except must be a session id (32 lowercase hex digits)")
            }
            kept = id
        }
        return JSONResponse.revoked(try await store.revokeAll(ofUser: try Self.user(context), except: kept))
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
