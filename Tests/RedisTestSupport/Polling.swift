/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
/// Use this instead of sleeping: it waits exactly as long as the condition needs.
public func eventually(
    timeout: Duration = .seconds(10),
    interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if (try? await condition()) == true { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: interval)
    }
}
