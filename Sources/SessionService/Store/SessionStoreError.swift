import RedisClient

/// Why a session operation did not happen.
enum SessionStoreError: Error, Sendable {
    /// No such live session (never existed, expired, deleted, or rotated away).
    case notFound
    /// `If-Match` named other versions than the current one.
    case versionMismatch(current: Int64)
    /// Replicated mode: the write happened on the primary but too few replicas acknowledged it in
    /// time, so it is not reported as a success (it may or may not survive a failover).
    case notDurable(RedisClientError)
    /// Redis could not be reached or did not answer in time; the operation may be retried.
    case unavailable(RedisClientError)
    /// Redis refused a command or answered something sessiond did not write: a bug, or foreign data
    /// under its keys. Not worth retrying.
    case corrupt(String)
}
