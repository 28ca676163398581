/// A Redis Functions library (Redis ≥ 7): Lua source starting with `#!lua name=<name>`.
///
/// Given to ``RedisClient``, it is loaded with `FUNCTION LOAD REPLACE` on every new connection and
/// again whenever Redis answers that a function is not found (after a restart, a failover to a
/// server without it, or `FUNCTION FLUSH`).
public struct RedisFunctionLibrary: Sendable, Hashable {
    /// The library name from the source's shebang line.
    public let name: String
    /// The full Lua source.
    public let source: String

    /// - Precondition: `source` starts with `#!lua name=<name>`.
    public init(source: String) {
        let firstLine = source.prefix { $0 != "\n" }
        let prefix = "#!lua name="
        precondition(firstLine.hasPrefix(prefix), "a Redis function library must start with '#!lua name=<name>'")
        self.name = String(firstLine.dropFirst(prefix.count).prefix { $0 != " " })
        self.source = source
    }

    var loadCommand: [RedisArgument] {
        ["FUNCTION", "LOAD", "REPLACE", RedisArgument(source)]
    }
}
