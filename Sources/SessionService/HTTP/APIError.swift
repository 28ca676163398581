import Hummingbird

/// An error a caller of the HTTP API sees: a status and a stable code, rendered as
/// `{"error":{"code":"…","message":"…"}}`.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    /// Stable, documented in openapi.yaml; callers branch on it.
    let code: String
    /// For people; may change wording.
    let message: String
    var headers: HTTPFields = [:]

    func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONResponse.make(status, body, headers: headers)
    }

    /// `{"error":{"code":"…","message":"…"}}`.
    var body: ByteBuffer {
        var writer = JSONWriter(capacity: 96 + message.utf8.count)
        writer.raw(#"{"error":{"code":"#)
        writer.string(code)
        writer.raw(#","message":"#)
        writer.string(message)
        writer.raw("}}")
        return writer.buffer
    }

    static func invalidJSON(_ message: String) -> APIError {
        APIError(status: .badRequest, code: "invalid_json", message: message)
    }
    static func invalidRequest(_ message: String) -> APIError {
        APIError(status: .badRequest, code: "invalid_request", message: message)
    }
    static let missingSessionToken = APIError(
        status: .badRequest, code: "missing_session_token", message: "the X-Session-Token header is required"
    )
    static let sessionNotFound = APIError(
        status: .notFound, code: "session_not_found", message: "no such session (unknown, expired, revoked or rotated)"
    )
    static let cursorExpired = APIError(
        status: .gone, code: "cursor_expired",
        message: "events after this cursor have been trimmed (older than the retention): resynchronise, then read again without `after`"
    )
    static func invalidCursor(_ message: String) -> APIError {
        APIError(status: .badRequest, code: "invalid_cursor", message: message)
    }
    static func invalidParameter(_ message: String) -> APIError {
        APIError(status: .badRequest, code: "invalid_parameter", message: message)
    }
    static let eventsDisabled = APIError(
        status: .notFound, code: "events_disabled", message: "events are off on this sessiond (SESSIOND_EVENTS_RETENTION=0)"
    )
    static let tokenSuperseded = APIError(
        status: .conflict, code: "token_superseded",
        message: "this token has been replaced by a rotation; it still reads and writes during its grace window, but only the current token can rotate"
    )
    static func reauthenticationRequired(authenticatedAt: Int64) -> APIError {
        APIError(
            status: .forbidden, code: "reauthentication_required",
            message: "the user last authenticated at \(Timestamp.rfc3339(milliseconds: authenticatedAt)), longer ago than max_auth_age allows"
        )
    }
    static func versionMismatch(current: Int64) -> APIError {
        APIError(
            status: .preconditionFailed, code: "version_mismatch",
            message: "If-Match does not name the current version \(current)",
            headers: [.eTag: "\"\(current)\""]
        )
    }
    static func payloadTooLarge(limit: Int) -> APIError {
        APIError(status: .contentTooLarge, code: "payload_too_large", message: "the request body is larger than \(limit) bytes")
    }
    static let unsupportedMediaType = APIError(
        status: .unsupportedMediaType, code: "unsupported_media_type", message: "the request body must be application/json"
    )
    /// `/v1/auth`: no live session behind the request (what a gateway's `auth_request` needs: 401).
    static func notAuthenticated(_ message: String) -> APIError {
        APIError(status: .unauthorized, code: "not_authenticated", message: message)
    }
    static let unauthorized = APIError(
        status: .unauthorized, code: "unauthorized", message: "a valid 'Authorization: Bearer <api key>' header is required",
        headers: [.wwwAuthenticate: "Bearer"]
    )
    static let notFound = APIError(status: .notFound, code: "not_found", message: "no such resource")
    static func methodNotAllowed(allowed: [HTTPRequest.Method]) -> APIError {
        APIError(
            status: .methodNotAllowed, code: "method_not_allowed",
            message: "this resource allows \(allowed.map(\.rawValue).joined(separator: ", "))",
            headers: [.allow: allowed.map(\.rawValue).joined(separator: ", ")]
        )
    }
    static func storageUnavailable(_ message: String) -> APIError {
        APIError(
            status: .serviceUnavailable, code: "storage_unavailable", message: message, headers: [.retryAfter: "1"]
        )
    }
    static func durabilityTimeout(_ message: String) -> APIError {
        APIError(status: .serviceUnavailable, code: "durability_timeout", message: message, headers: [.retryAfter: "1"])
    }
    static let internalError = APIError(
        status: .internalServerError, code: "internal_error", message: "the server failed; the error was logged"
    )
}
