import Hummingbird
import Synchronization

/// The methods each path of the router allows, read from the router itself once every route is
/// registered, so that any other method on a known path (TRACE, OPTIONS, PUT where only GET
/// exists, ...) is answered 405 `method_not_allowed` with `Allow`, not 404.
final class APIRoutes: Sendable {
    private let routes = Mutex<[(path: RouterPath, methods: [HTTPRequest.Method])]>([])

    /// Takes the routes of `router`; call it after the last route is added.
    func load(from router: Router<SessionRequestContext>) {
        var byPath: [(path: RouterPath, methods: [HTTPRequest.Method])] = []
        for route in router.routes {
            if let index = byPath.firstIndex(where: { $0.path == route.path }) {
                byPath[index].methods.append(route.method)
            } else {
                byPath.append((route.path, [route.method]))
            }
        }
        // HEAD is answered wherever GET is (see HTTPResponderHandler).
        for index in byPath.indices {
            if byPath[index].methods.contains(.get) { byPath[index].methods.append(.head) }
            byPath[index].methods.sort { $0.rawValue < $1.rawValue }
        }
        routes.withLock { $0 = byPath }
    }

    /// The methods a path allows, or `nil` for a path the API does not have. Paths match by their
    /// non-empty segments, as the router matches them.
    func allowedMethods(forPath path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/")
        return routes.withLock { routes in
            routes.first { route in
                route.path.components.count == segments.count && zip(route.path.components, segments).allSatisfy { $0 ~= $1 }
            }?.methods
        }
    }
}
