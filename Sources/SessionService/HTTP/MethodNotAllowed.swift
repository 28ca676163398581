import Hummingbird

extension RouterMethods {
    /// Answers every standard method a path does not serve with 405 `method_not_allowed` and `Allow`.
    @discardableResult
    func refuseOtherMethods(_ path: RouterPath, allowing allowed: [HTTPRequest.Method]) -> Self {
        let standard: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete]
        for method in standard where !allowed.contains(method) {
            on(path, method: method) { _, _ -> Response in
                throw APIError.methodNotAllowed(allowed: allowed)
            }
        }
        return self
    }
}
