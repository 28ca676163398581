import RedisClient

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
/// Use this instead of sleeping: it waits exactly as long as the condition needs.
///
/// An error thrown by `condition` counts as "not yet"; when the wait times out, the last such error
/// is printed, so that a failed expectation says why the condition never held.
public func eventually(
    timeout: Duration = .seconds(10),
    interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool,
    file: StaticString = #fileID, line: UInt = #line
) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    var lastError: (any Error)?
    while true {
        do {
            if try await condition() { return true }
        } catch {
            lastError = error
        }
        if ContinuousClock.now >= deadline {
            if let lastError {
                print("\(file):\(line): eventually: the condition did not hold within \(timeout); it last threw: \(lastError)")
            }
            return false
        }
        try? await Task.sleep(for: interval)
    }
}

/// Whether `replicas` replicas of the primary `client` talks to are streaming: online, and each
/// acknowledging a write made after that. Online alone is not enough: after a sync Redis 7.0
/// streams nothing to a replica until its first REPLCONF ACK, up to a second later, and a WAIT in
/// that window times out.
public func replicasAreStreaming(_ client: RedisClient, replicas: Int) async throws -> Bool {
    let info = try await client.send("INFO", "replication").string ?? ""
    guard info.components(separatedBy: "state=online").count - 1 == replicas else { return false }
    // Written after the sync, so not part of the snapshot the replicas loaded.
    _ = try await client.send("SET", "replication-probe", "1")
    return try await client.send("WAIT", RedisArgument(replicas), "100") == .integer(Int64(replicas))
}
