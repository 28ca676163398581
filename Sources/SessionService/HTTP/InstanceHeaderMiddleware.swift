import HTTPTypes
import Hummingbird

/// Names the instance that served each response (`X-Sessiond-Instance`), errors included, so a user
/// behind a load balancer can see requests spread across instances.
struct InstanceHeaderMiddleware: RouterMiddleware {
    typealias Context = SessionRequestContext
    static let header = HTTPField.Name("X-Sessiond-Instance")!

    let instance: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[Self.header] = instance
        return response
    }
}
