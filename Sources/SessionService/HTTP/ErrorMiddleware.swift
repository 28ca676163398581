import Hummingbird
import Logging

/// Turns every error into the API's JSON error shape and logs each request once (never a header,
/// so never a token or API key).
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = SessionRequestContext
    /// What a path allows, for answering 405 rather than 404.
    let routes: APIRoutes

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            let apiError = Self.apiError(for: error, path: request.uri.path, routes: routes, logger: context.logger)
            response = try apiError.response(from: request, context: context)
        }
        Self.logRequest(
            method: request.method, path: request.uri.path, status: response.status, since: started,
            logger: context.logger, level: context.logger.logLevel
        )
        return response
    }

    /// One line per request: debug, or warning for a 5xx. The path only, never a header or the query.
    /// `path` and `logger` are only made when `loggerLevel` lets the line through.
    static func logRequest(
        method: HTTPRequest.Method, path: @autoclosure () -> String, status: HTTPResponse.Status,
        since started: ContinuousClock.Instant, logger: @autoclosure () -> Logger, level loggerLevel: Logger.Level
    ) {
        let level: Logger.Level = status.code >= 500 ? .warning : .debug
        guard loggerLevel <= level else { return }
        let logger = logger()
        let elapsed = ContinuousClock.now - started
        let milliseconds = Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000
        logger.log(
            level: level, "request",
            metadata: [
                "method": "\(method)", "path": "\(path())",
                "status": "\(status.code)", "ms": "\(Int(milliseconds.rounded()))",
            ]
        )
    }

    /// The API error a failure is answered with; failures of the server are logged here.
    static func apiError(for error: any Error, path: String, routes: APIRoutes, logger: Logger) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as SessionStoreError:
            switch error {
            case .notFound, .tokenReused: return .sessionNotFound
            case .tokenSuperseded: return .tokenSuperseded
            case .reauthenticationRequired(let authenticatedAt): return .reauthenticationRequired(authenticatedAt: authenticatedAt)
            case .versionMismatch(let current): return .versionMismatch(current: current)
            case .sessionTooLarge(let message): return APIError(status: .contentTooLarge, code: "session_too_large", message: message)
            case .invalidAttributeName(let message): return APIError(status: .badRequest, code: "invalid_attribute_name", message: message)
            case .cursorExpired: return .cursorExpired
            case .notDurable(let cause):
                logger.warning("write not acknowledged by enough replicas", metadata: ["error": "\(cause)"])
                return .durabilityTimeout(cause.message)
            case .unavailable(let cause):
                logger.warning("Redis unavailable", metadata: ["error": "\(cause)"])
                return .storageUnavailable("the session store is unavailable: \(cause.code)")
            case .corrupt(let reason):
                logger.error("session store failure", metadata: ["error": "\(reason)"])
                return .internalError
            }
        case let error as HTTPError:
            switch error.status {
            case .notFound:
                // The router found no route: a known path with another method is 405, not 404.
                if let allowed = routes.allowedMethods(forPath: path) {
                    return .methodNotAllowed(allowed: allowed)
                }
                return .notFound
            case .contentTooLarge: return APIError(status: .contentTooLarge, code: "payload_too_large", message: "the request body is too large")
            case .methodNotAllowed: return APIError(status: .methodNotAllowed, code: "method_not_allowed", message: "method not allowed")
            default:
                if error.status.code < 500 {
                    return APIError(status: error.status, code: "invalid_request", message: error.body ?? "bad request")
                }
                logger.error("unexpected HTTP error", metadata: ["error": "\(error)"])
                return .internalError
            }
        default:
            logger.error("unexpected error", metadata: ["error": "\(String(reflecting: error))"])
            return .internalError
        }
    }
}
