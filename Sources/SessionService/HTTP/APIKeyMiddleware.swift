import Hummingbird

/// Requires `Authorization: Bearer <key>` with one of the configured API keys on every `/v1`
/// request. Keys are compared in constant time; several keys may be valid at once (rotation).
struct APIKeyMiddleware: RouterMiddleware {
    typealias Context = SessionRequestContext
    let keys: [[UInt8]]

    init(keys: [String]) {
        self.keys = keys.map { Array($0.utf8) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try authorize(request.headers)
        return try await next(request, context)
    }

    /// - Throws: ``APIError/unauthorized`` unless the headers carry one of the keys.
    func authorize(_ headers: HTTPFields) throws {
        guard let header = headers[.authorization] else { throw APIError.unauthorized }
        let prefix = "bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix,
            SecretComparison.matchesAny(header.dropFirst(prefix.count), of: keys)
        else { throw APIError.unauthorized }
    }
}
