/// An error from the Redis client: a stable ``code`` a caller can act on and a human ``message``.
///
/// A closed set: the codes below are the only ones the client produces.
public struct RedisClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, in a form stable enough to branch on.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidURL = "invalid_url"
            case invalidCommand = "invalid_command"
            case connectionFailed = "connection_failed"
            case connectionClosed = "connection_closed"
            case timeout = "timeout"
            case authenticationFailed = "authentication_failed"
            case protocolError = "protocol_error"
            case serverError = "server_error"
            case shutDown = "shut_down"
            case notPrimary = "not_primary"
            case durabilityTimeout = "durability_timeout"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The configuration URL is not `redis://[user:password@]host[:port][/db]`.
        public static let invalidURL = Code(.invalidURL)
        /// The command cannot be encoded (for example: no arguments).
        public static let invalidCommand = Code(.invalidCommand)
        /// No connection could be made (refused, unreachable, or still backing off after such a failure).
        public static let connectionFailed = Code(.connectionFailed)
        /// The connection broke while the command was pending; the command may or may not have run.
        public static let connectionClosed = Code(.connectionClosed)
        /// The command got no reply within its deadline; the command may or may not have run.
        public static let timeout = Code(.timeout)
        /// The server refused the configured credentials.
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The server sent bytes that are not valid RESP; the connection was dropped.
        public static let protocolError = Code(.protocolError)
        /// The server answered this command with an error reply; the connection is fine.
        public static let serverError = Code(.serverError)
        /// The client was shut down.
        public static let shutDown = Code(.shutDown)
        /// In Sentinel mode, the server named as primary turned out to be a replica (`ROLE`).
        public static let notPrimary = Code(.notPrimary)
        /// The write was applied on the primary, but fewer replicas than required acknowledged it
        /// within the durability timeout: it may be lost if the primary dies now.
        public static let durabilityTimeout = Code(.durabilityTimeout)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// Details for people and logs; for ``Code/serverError`` it is Redis' own error text.
    public let message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// For a server error, its first word (`ERR`, `WRONGTYPE`, `READONLY`, `NOAUTH`, ...); else `nil`.
    public var serverErrorPrefix: Substring? {
        guard code == .serverError else { return nil }
        return message.split(separator: " ", maxSplits: 1).first
    }

    public var description: String { "\(code): \(message)" }

    static func invalidURL(_ message: String) -> Self { .init(code: .invalidURL, message: message) }
    static func invalidCommand(_ message: String) -> Self { .init(code: .invalidCommand, message: message) }
    static func connectionFailed(_ message: String) -> Self { .init(code: .connectionFailed, message: message) }
    static func connectionClosed(_ message: String) -> Self { .init(code: .connectionClosed, message: message) }
    static func timeout(_ message: String) -> Self { .init(code: .timeout, message: message) }
    static func authenticationFailed(_ message: String) -> Self { .init(code: .authenticationFailed, message: message) }
    static func protocolError(_ message: String) -> Self { .init(code: .protocolError, message: message) }
    static func serverError(_ message: String) -> Self { .init(code: .serverError, message: message) }
    static func notPrimary(_ message: String) -> Self { .init(code: .notPrimary, message: message) }
    static func durabilityTimeout(_ message: String) -> Self { .init(code: .durabilityTimeout, message: message) }
    static let shutDown = Self(code: .shutDown, message: "the Redis client has been shut down")
}
