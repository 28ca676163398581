import HTTPTypes
import Hummingbird

/// The headers every response carries, set in this one place, errors included (it sits outside
/// ``ErrorMiddleware``):
/// - `X-Sessiond-Instance` names the instance that answered, so a user behind a load balancer can
///   see requests spread across instances;
/// - `Cache-Control: no-store` on everything under `/v1`: a session, a token or an error about
///   either is private to its caller and must never be kept by a cache.
struct ResponseHeadersMiddleware: RouterMiddleware {
    typealias Context = SessionRequestContext
    static let instanceHeader = HTTPField.Name("X-Sessiond-Instance")!

    let instance: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[Self.instanceHeader] = instance
        if Self.isAPITarget(request.head.path ?? "") {
            response.headers[.cacheControl] = "no-store"
        }
        return response
    }

    /// A request target (path and query, as sent) whose first path segment is `v1`. Segments are
    /// the non-empty parts between slashes, as the router matches them (`//v1/session` is `/v1/session`).
    static func isAPITarget(_ target: String) -> Bool {
        var target = target
        return target.withUTF8 { bytes in
            var index = 0
            while index < bytes.count, bytes[index] == UInt8(ascii: "/") { index += 1 }
            guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "v"), bytes[index + 1] == UInt8(ascii: "1") else {
                return false
            }
            return index + 2 == bytes.count || bytes[index + 2] == UInt8(ascii: "/") || bytes[index + 2] == UInt8(ascii: "?")
        }
    }
}
