import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` process on a free loopback port, started by a test and stopped by its PID.
///
/// Start-up waits (with a deadline) until the server answers on its port; a server that cannot be
/// started throws, so the test fails rather than skips. Nothing here blocks the caller's thread:
/// processes are spawned and reaped on NIO's thread pool, readiness is polled with `Task.sleep`.
///
/// Lifetimes: a server lives as long as the test holds it. Releasing it (the test returns or
/// throws) kills it, and a test process that dies takes its servers with it: each is started
/// under `setpriv --pdeathsig SIGKILL` from one of NIO's long-lived pool threads.
public final class RedisServer: Sendable {
    /// The TCP port on 127.0.0.1.
    public let port: Int
    /// The process id; the server is only ever signalled through it.
    public let pid: pid_t
    /// Extra `redis-server` arguments it was started with (kept for ``restart()``).
    public let arguments: [String]
    /// The folder holding the server's log and data files.
    public let directory: URL
    /// Whether the process has not been signalled to end (or seen to exit) yet.
    private let running = Atomic<Bool>(true)

    private init(port: Int, pid: pid_t, arguments: [String], directory: URL) {
        self.port = port
        self.pid = pid
        self.arguments = arguments
        self.directory = directory
    }

    /// `redis://127.0.0.1:<port>`.
    public var url: String { "redis://127.0.0.1:\(port)" }

    /// Starts `redis-server` with no persistence on a free port (or `port`) and waits until it answers.
    /// - Parameter arguments: extra command-line settings, e.g. `["--requirepass", "secret"]`.
    public static func start(arguments: [String] = [], port: Int? = nil, timeout: Duration = .seconds(10)) async throws -> RedisServer {
        try await retryingOnPortClash(attempts: port == nil ? 5 : 1) {
            let chosen = try port ?? freeLoopbackPort()
            return try await launch(port: chosen, arguments: arguments, timeout: timeout)
        }
    }

    /// Starts `redis-sentinel` on a free port, monitoring `primary` under `masterName` with quorum
    /// `quorum`, and waits until it answers. Its config file is its own (Sentinel rewrites it).
    /// - Parameter primaryPort: the primary's port to monitor, when not its plain one (its TLS port).
    public static func startSentinel(
        monitoring primary: RedisServer, primaryPort: Int? = nil, masterName: String = "mymaster", quorum: Int = 2,
        downAfterMilliseconds: Int = 1000, extraConfig: [String] = [], timeout: Duration = .seconds(10)
    ) async throws -> RedisServer {
        try await retryingOnPortClash(attempts: 5) {
            let port = try freeLoopbackPort()
            let directory = try makeDirectory(port: port)
            let config = """
                port \(port)
                bind 127.0.0.1
                daemonize no
                dir \(directory.path)
                logfile \(directory.appendingPathComponent("redis.log").path)
                sentinel monitor \(masterName) 127.0.0.1 \(primaryPort ?? primary.port) \(quorum)
                sentinel down-after-milliseconds \(masterName) \(downAfterMilliseconds)
                sentinel failover-timeout \(masterName) 10000
                sentinel parallel-syncs \(masterName) 1
                \(extraConfig.joined(separator: "\n"))

                """
            let file = directory.appendingPathComponent("sentinel.conf")
            try config.write(to: file, atomically: true, encoding: .utf8)
            return try await launch(argv: [serverExecutable, file.path, "--sentinel"], port: port, arguments: [], directory: directory, timeout: timeout)
        }
    }

    /// Starts a TCP proxy on a free port that forwards to `target` delaying every byte by
    /// `delayMilliseconds` each way (Resources/delay-proxy.py), and waits until it answers.
    /// Killing it loses the bytes in flight, like a crashed host.
    /// - Parameter port: the port to listen on (default: a free one).
    public static func startDelayProxy(
        to target: RedisServer, delayMilliseconds: Int, port: Int? = nil, timeout: Duration = .seconds(10)
    ) async throws -> RedisServer {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Resources/delay-proxy.py").path
        return try await retryingOnPortClash(attempts: port == nil ? 5 : 1) {
            let port = try port ?? freeLoopbackPort()
            let directory = try makeDirectory(port: port)
            return try await launch(
                argv: ["python3", script, String(port), String(target.port), String(delayMilliseconds)],
                port: port, arguments: [], directory: directory, timeout: timeout
            )
        }
    }

    /// Starts the command `argv(port, logFile)` makes for a free port (any program that listens on
    /// it, such as a sessiond started with its own limits, writing its output to ``logFile``) and
    /// waits until something answers there. It is stopped by its PID like a server, and dies with
    /// the test process.
    public static func startCommand(timeout: Duration = .seconds(30), _ argv: @escaping (Int, String) -> [String]) async throws -> RedisServer {
        try await retryingOnPortClash(attempts: 5) {
            let port = try freeLoopbackPort()
            let directory = try makeDirectory(port: port)
            let log = directory.appendingPathComponent("redis.log").path
            return try await launch(argv: argv(port, log), port: port, arguments: [], directory: directory, timeout: timeout)
        }
    }

    /// The file a server (or a command started by ``startCommand(timeout:_:)``) writes its log to.
    public var logFile: URL { directory.appendingPathComponent("redis.log") }

    /// A free port can be taken by someone else between probing and binding: try a few.
    private static func retryingOnPortClash(attempts: Int, _ launch: () async throws -> RedisServer) async throws -> RedisServer {
        var lastError: (any Error)?
        for _ in 0..<attempts {
            do {
                return try await launch()
            } catch {
                lastError = error
            }
        }
        throw lastError ?? TestServerError("no attempt to start a server was made")
    }

    private static func makeDirectory(port: Int) throws -> URL {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sessiond-redis-\(port)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// The server every test starts: `redis-server`, or `valkey-server` when the environment has
    /// `SESSIOND_TEST_SERVER=valkey` (`make test` runs the session API suites that way too).
    public static let serverExecutable = ProcessInfo.processInfo.environment["SESSIOND_TEST_SERVER"] == "valkey" ? "valkey-server" : "redis-server"

    private static func launch(port: Int, arguments: [String], timeout: Duration) async throws -> RedisServer {
        let directory = try makeDirectory(port: port)
        let argv = [
            serverExecutable,
            "--bind", "127.0.0.1", "--port", String(port),
            "--save", "", "--appendonly", "no",
            "--dir", directory.path, "--logfile", directory.appendingPathComponent("redis.log").path,
            "--daemonize", "no",
        ] + arguments
        return try await launch(argv: argv, port: port, arguments: arguments, directory: directory, timeout: timeout)
    }

    private static func launch(argv: [String], port: Int, arguments: [String], directory: URL, timeout: Duration) async throws -> RedisServer {
        let pid = try await NIOThreadPool.singleton.runIfActive { try spawnDyingWithParent(argv) }
        let server = RedisServer(port: port, pid: pid, arguments: arguments, directory: directory)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if server.hasExited() {
                let log = (try? String(contentsOf: directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
                throw TestServerError("\(argv[0]) on port \(port) exited during start-up: \(log.suffix(500))")
            }
            switch await probe(port: port) {
            case .none:
                break
            case .answered(let pid):
                // Someone else's server on the port (ours failed to bind it) must not pass for ours.
                if let pid, pid != Int(server.pid), argv[0] != "python3", argv[0] != "sh" {
                    await server.kill()
                    throw TestServerError("port \(port) is served by process \(pid), not by the \(argv[0]) just started (\(server.pid))")
                }
                return server
            }
            try await Task.sleep(for: .milliseconds(10))  // polling interval of a bounded wait, not a fixed delay
        }
        await server.kill()
        throw TestServerError("\(argv[0]) on port \(port) did not answer within \(timeout)")
    }

    /// SIGKILL: the server dies at once, as in a crash. Returns once the process is reaped.
    public func kill() async {
        await Self.signalAndReap([self], SIGKILL)
    }

    /// SIGKILL to each server in order, all signals sent before any is reaped: they die within
    /// microseconds of each other, as on one crashing host.
    public static func killTogether(_ servers: [RedisServer]) async {
        await signalAndReap(servers, SIGKILL)
    }

    /// SIGTERM: a clean shutdown (SIGKILL if it takes longer than 10 s). Returns once reaped.
    public func stop() async {
        await Self.signalAndReap([self], SIGTERM)
    }

    /// Sends `signal` (0: none) and waits (polling) for the process to exit by itself; returns its exit
    /// status, or `nil` when a signal ended it or it was still running after `timeout` (it is then
    /// killed).
    public func exitStatus(after signal: Int32, timeout: Duration) async -> Int32? {
        guard running.exchange(false, ordering: .relaxed) else { return nil }
        Glibc.kill(pid, signal)
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) != pid {
            if ContinuousClock.now >= deadline {
                Glibc.kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return nil
            }
            try? await Task.sleep(for: .milliseconds(10))  // polling interval of a bounded wait
        }
        // WIFEXITED / WEXITSTATUS (macros Swift does not import).
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : nil
    }

    /// SIGSTOP: the server keeps its socket (the kernel still accepts connections) but answers nothing.
    public func pause() {
        if running.load(ordering: .relaxed) { Glibc.kill(pid, SIGSTOP) }
    }

    /// SIGCONT after ``pause()``.
    public func resume() {
        if running.load(ordering: .relaxed) { Glibc.kill(pid, SIGCONT) }
    }

    /// Starts a new server with the same port and arguments (after ``kill()`` or ``stop()``).
    public func restart(timeout: Duration = .seconds(10)) async throws -> RedisServer {
        // The port may linger briefly in the kernel after the old process died; retry within the deadline.
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                return try await RedisServer.launch(port: port, arguments: arguments, timeout: timeout)
            } catch {
                if ContinuousClock.now >= deadline { throw error }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    deinit {
        // No caller to await here: kill, and leave the wait for the exit to a pool thread.
        if running.exchange(false, ordering: .relaxed) {
            Glibc.kill(pid, SIGCONT)
            killAndReapInTheBackground(pid)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Signals every server still running, then reaps them: all signals go out before any wait.
    /// Waits by polling `waitpid(WNOHANG)` with `Task.sleep`, never blocking a thread.
    private static func signalAndReap(_ servers: [RedisServer], _ signal: Int32) async {
        let signalled = servers.filter { $0.running.exchange(false, ordering: .relaxed) }
        for server in signalled {
            Glibc.kill(server.pid, SIGCONT)  // a paused process must be able to act on SIGTERM
            Glibc.kill(server.pid, signal)
        }
        for server in signalled {
            let killAt = ContinuousClock.now + .seconds(10)
            var killed = signal == SIGKILL
            while !server.isReaped() {
                if !killed && ContinuousClock.now >= killAt {
                    Glibc.kill(server.pid, SIGKILL)
                    killed = true
                }
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
    }

    private func isReaped() -> Bool { reapIfExited(pid) }

    /// Whether the process exited on its own (during start-up); reaps it if so.
    private func hasExited() -> Bool {
        guard reapIfExited(pid) else { return false }
        running.store(false, ordering: .relaxed)
        return true
    }
}

/// Why a test's server could not be started.
public struct TestServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Starts `argv[0]` (looked up on PATH) with `argv`, output discarded, under
/// `setpriv --pdeathsig SIGKILL` (util-linux, on every Debian): the kernel kills it when the thread
/// that spawned it ends. Call it on a thread that lives as long as the process (NIO's pool threads
/// do), so that the child dies with the test process and never outlives it. Returns its PID (setpriv
/// execs the program, so the PID is the program's).
func spawnDyingWithParent(_ argv: [String]) throws -> pid_t {
    try spawn(["setpriv", "--pdeathsig", "SIGKILL", "--"] + argv)
}

/// Starts `argv[0]` (looked up on PATH) with `argv`, output discarded; returns its PID.
func spawn(_ argv: [String]) throws -> pid_t {
    var fileActions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fileActions)
    defer { posix_spawn_file_actions_destroy(&fileActions) }
    posix_spawn_file_actions_addopen(&fileActions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&fileActions, 2, "/dev/null", O_WRONLY, 0)
    // Nothing else of this process leaks into the child. NIO's sockets are not all close-on-exec: a
    // server-side connection inherited by a redis-server stayed open there after sessiond closed
    // it, so its client saw no close until that redis-server exited.
    guard let closeFrom = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else {
        throw TestServerError("glibc has no posix_spawn_file_actions_addclosefrom_np (needs glibc 2.34, Debian 12 has 2.36)")
    }
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    guard unsafeBitCast(closeFrom, to: AddCloseFrom.self)(&fileActions, 3) == 0 else {
        throw TestServerError("cannot keep this process's descriptors out of \(argv[0])")
    }
    // The test runner's threads block most signals, and a spawned child inherits that mask: without
    // resetting it, SIGTERM would never reach the server and waitpid would wait forever.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    var allSignals = sigset_t()
    sigfillset(&allSignals)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for pointer in cArguments { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawnp(&pid, argv[0], &fileActions, &attributes, &cArguments, environ)
    guard result == 0 else {
        throw TestServerError("cannot start \(argv[0]): \(String(cString: strerror(result))) (is it installed?)")
    }
    return pid
}

/// Ports this process has handed out, and the cluster bus port (+10000) of each: never handed out
/// twice, so a test that restarts its server on the same port cannot find another test's server
/// there, and no server gets the bus port of a cluster node (whose peers keep calling it after the
/// node died, and would hold a connection open to the newcomer).
private let handedOutPorts = Mutex<Set<Int>>([])

/// A TCP port on 127.0.0.1 that nothing listens on right now and that this process has not
/// handed out before (nor the bus port of one it has). With `clusterNode`, one whose bus port
/// (+10000) is a valid port too.
public func freeLoopbackPort(clusterNode: Bool = false) throws -> Int {
    for _ in 0..<200 {
        let port = try probeFreePort()
        if clusterNode && port + 10000 > 65535 { continue }
        let fresh = handedOutPorts.withLock { ports -> Bool in
            guard !ports.contains(port), !ports.contains(port + 10000) else { return false }
            ports.insert(port)
            ports.insert(port + 10000)
            return true
        }
        if fresh { return port }
    }
    throw TestServerError("no unused loopback port found")
}

/// Ports are drawn from 10000-22767, below Linux's ephemeral range (32768-60999): a port the
/// kernel hands out to an outgoing connection (the tests make thousands) can then never take a
/// port between its probe and the server's bind. Their cluster bus ports (+10000) stay below it too.
private let probedPorts = 10000..<22768

private func probeFreePort() throws -> Int {
    for _ in 0..<1000 {
        let port = Int.random(in: probedPorts)
        if canBind(port) { return port }
    }
    throw TestServerError("no free port in \(probedPorts) on 127.0.0.1")
}

private func canBind(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// What a readiness probe of a port found.
enum ProbeAnswer {
    /// Nothing answered (yet).
    case none
    /// Something answered; `pid` is the `process_id` it reported (`nil` when it would not say,
    /// for example `-NOAUTH`, or when it is a proxy in front of another server).
    case answered(pid: Int?)
}

/// Whether something on 127.0.0.1:`port` answers within 200 ms, and which process it says it is
/// (`INFO server`). Asynchronous: no thread waits for the answer.
func probe(port: Int) async -> ProbeAnswer {
    let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
    let answered = eventLoop.makePromise(of: [UInt8].self)
    // Whatever happens, the promise is completed (a later completion is ignored).
    let timer = eventLoop.scheduleTask(in: .milliseconds(200)) { answered.fail(TestServerError("no answer")) }
    defer { timer.cancel() }
    do {
        let channel = try await ClientBootstrap(group: eventLoop)
            .connectTimeout(.milliseconds(200))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FirstReply(answered))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        // QUIT: the server itself ends the probe's connection once it has answered, so the probe
        // is never left among the clients of the server a test is handed, however late it answers.
        channel.writeAndFlush(ByteBuffer(string: "INFO server\r\nQUIT\r\n"), promise: nil)
        let reply = try? await answered.futureResult.get()
        try? await channel.close()
        guard let reply, !reply.isEmpty else { return .none }
        let text = String(decoding: reply, as: UTF8.self)
        let pid = text.firstMatch(of: /process_id:(\d+)/).flatMap { Int($0.1) }
        return .answered(pid: pid)
    } catch {
        answered.fail(error)
        return .none
    }
}

/// Collects the server's first reply: an error or status line, or a whole bulk string (`INFO`).
/// Sentinels know no `QUIT`, so the probe cannot wait for the server to close the connection.
private final class FirstReply: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<[UInt8]>
    private var bytes: [UInt8] = []

    init(_ promise: EventLoopPromise<[UInt8]>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytes.append(contentsOf: unwrapInboundIn(data).readableBytesView)
        guard let lineEnd = bytes.firstRange(of: [13, 10]) else { return }
        if bytes.first == UInt8(ascii: "$"), let length = Int(String(decoding: bytes[1..<lineEnd.lowerBound], as: UTF8.self)) {
            guard bytes.count >= lineEnd.upperBound + max(length, 0) + 2 else { return }
        }
        promise.succeed(bytes)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(bytes)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}

/// Whether the child `pid` has exited (or is no child of ours); reaps it if so. Never blocks.
func reapIfExited(_ pid: pid_t) -> Bool {
    var status: Int32 = 0
    let result = waitpid(pid, &status, WNOHANG)
    return result == pid || (result == -1 && errno == ECHILD)
}

/// SIGKILL, and the wait for the exit left to one of NIO's pool threads: for a `deinit`, which
/// has no caller to await.
func killAndReapInTheBackground(_ pid: pid_t) {
    Glibc.kill(pid, SIGKILL)
    NIOThreadPool.singleton.submit { _ in
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }
}
