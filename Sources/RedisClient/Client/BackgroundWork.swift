/// The work a ``RedisClient`` does apart from its callers: a connect that every caller of a slot
/// waits for, a lookup of the primary through the sentinels, a round of cluster map refreshes.
/// Each must outlive the caller that happened to start it (cancelling that caller must not abort
/// what others wait for), so none runs in the caller's task: ``start(_:)`` hands it to
/// ``RedisClient/run()``, which runs it as a child task and cancels it on shutdown. Jobs started
/// before `run()` begins wait for it.
final class BackgroundWork: Sendable {
    typealias Job = @Sendable () async -> Void

    private let jobs: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation

    init() {
        (jobs, continuation) = AsyncStream.makeStream(of: Job.self)
    }

    /// Hands `job` to the running client; `false` once the client has shut down (the job will
    /// never run: its caller must fail what waits for it).
    func start(_ job: @escaping Job) -> Bool {
        if case .enqueued = continuation.yield(job) { return true }
        return false
    }

    /// Runs every job started, each as a child task, until ``finish()`` or cancellation; then
    /// cancels the jobs still running, refuses new ones, and returns when they have ended.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await job in jobs {
                group.addTask { await job() }
            }
            continuation.finish()
            group.cancelAll()
        }
    }

    /// Refuses further jobs and ends ``run()``.
    func finish() {
        continuation.finish()
    }
}
