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
