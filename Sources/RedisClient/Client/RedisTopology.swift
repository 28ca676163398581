/// Where ``RedisClient``'s one send loop sends a command: the only thing that differs between one
/// server, a Sentinel-resolved primary and a Redis Cluster. Whether to send again is decided by
/// ``CommandAttempt``, never here.
///
/// Conformers: ``PrimaryTopology`` (one server, or the primary Sentinel names) and
/// ``ClusterTopology`` (the primary of a key's slot).
protocol RedisTopology: Sendable {
    var deployment: CommandAttempt.Deployment { get }

    /// A live connection for a command on `slot` (`nil`: a command without a key; any primary will
    /// do), on the caller's event loop when it runs on one.
    /// - Throws: `connectionFailed` when none can be made now (no route yet, a node backing off),
    ///   having noted what that says about the node; `shutDown`.
    func connection(forSlot slot: Int?) async throws -> RedisConnection

    /// A live connection to `endpoint`, where a redirect points.
    func connection(to endpoint: RedisEndpoint) async throws -> RedisConnection

    /// What a failed attempt on `connection` said about its node.
    func noticed(_ notice: CommandAttempt.Notice, on connection: RedisConnection?) async

    /// A `MOVED`: `slot` is served by `endpoint` now.
    func moved(slot: Int, to endpoint: RedisEndpoint)

    /// Closes every connection and stops the topology's background work; later commands fail with `shutDown`.
    func shutdown() async
}
