import HTTPTypes
import Hummingbird

/// Forward authentication for a gateway (nginx `auth_request`, Traefik ForwardAuth, Envoy
/// `ext_authz`): `GET` or `HEAD /v1/auth` answers 200 with who the session is in headers for a live
/// session, 401 for anything else. It reads (and slides) the session exactly as
/// `GET /v1/session` does.
struct AuthController {
    typealias Context = SessionRequestContext
    static let sessionIDHeader = HTTPField.Name("X-Session-Id")!
    static let userHeader = HTTPField.Name("X-Session-User")!
    static let omittedHeader = HTTPField.Name("X-Session-Attributes-Omitted")!
    /// The longest attribute passed on as a header; a gateway buffers a few KiB of headers.
    static let maximumAttributeHeaderBytes = 2048

    let store: SessionStore
    /// The cookie the token may come in; `nil`: the `X-Session-Token` header only.
    let cookieName: String?
    /// The attributes passed on, each as `X-Session-Attribute-<name>`.
    let attributes: [(name: String, header: HTTPField.Name)]

    init(store: SessionStore, cookieName: String?, attributeNames: [String]) {
        self.store = store
        self.cookieName = cookieName
        // The names were validated as header tokens with the configuration.
        self.attributes = attributeNames.compactMap { name in HTTPField.Name("X-Session-Attribute-\(name)").map { (name, $0) } }
    }

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("auth", use: authenticate)
    }

    @Sendable func authenticate(_ request: Request, context: Context) async throws -> Response {
        guard let text = request.headers[SessionController.tokenHeader] ?? cookieName.flatMap({ request.cookies[$0]?.value }) else {
            throw APIError.notAuthenticated("no session token: send X-Session-Token\(cookieName.map { " or the \($0) cookie" } ?? "")")
        }
        let session: Session
        do {
            guard let token = SessionToken(parsing: text) else { throw SessionStoreError.notFound }
            session = try await store.read(token, touch: true)
        } catch SessionStoreError.notFound {
            throw APIError.notAuthenticated("no such session (unknown, expired, revoked or rotated)")
        }
        var headers: HTTPFields = [Self.sessionIDHeader: session.id.hex]
        if let user = session.user { headers[Self.userHeader] = Self.headerSafe(user) }
        var omitted: [String] = []
        for (name, header) in attributes {
            guard let attribute = session.data.first(where: { $0.name == name }) else { continue }
            if attribute.raw.count <= Self.maximumAttributeHeaderBytes, attribute.raw.allSatisfy({ $0 >= 0x20 && $0 < 0x7f || $0 == 0x09 }) {
                headers[header] = String(decoding: attribute.raw, as: UTF8.self)
            } else {
                // Never cut or rewritten into something else: left out, and said so.
                omitted.append(name)
            }
        }
        if !omitted.isEmpty { headers[Self.omittedHeader] = omitted.joined(separator: ", ") }
        return Response(status: .ok, headers: headers)
    }

    /// A user name as a header value: printable ASCII as it is, every other byte (and `%`)
    /// percent-encoded, so that no name can break the header or pass for another.
    static func headerSafe(_ user: String) -> String {
        var text = ""
        for byte in user.utf8 {
            if byte > 0x20, byte < 0x7f, byte != UInt8(ascii: "%") {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                text += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return text
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
