import Hummingbird

/// Every path the API serves and the methods each allows, so that any other method on a known path
/// (TRACE, OPTIONS, PUT where only GET exists, ...) is answered 405 `method_not_allowed` with `Allow`,
/// not 404. Keep in step with the controllers' `addRoutes` and with openapi.yaml.
enum APIRoutes {
    static let allowedMethods: [(pattern: [Substring], methods: [HTTPRequest.Method])] = [
        ("/v1/sessions", [.post]),
        ("/v1/session", [.get, .patch, .delete]),
        ("/v1/session/data", [.put]),
        ("/v1/session/rotate", [.post]),
        ("/v1/sessions/:id", [.get, .delete]),
        ("/v1/users/:user/sessions", [.get, .delete]),
        ("/healthz", [.get]),
        ("/readyz", [.get]),
        ("/metrics", [.get]),
        ("/openapi.yaml", [.get]),
    ].map { (path, methods) in (path.split(separator: "/"), methods) }

    /// The methods a path allows, or `nil` for a path the API does not have.
    static func allowedMethods(forPath path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/")
        for (pattern, methods) in allowedMethods where pattern.count == segments.count {
            if zip(pattern, segments).allSatisfy({ $0.hasPrefix(":") || $0 == $1 }) { return methods }
        }
        return nil
    }
}
