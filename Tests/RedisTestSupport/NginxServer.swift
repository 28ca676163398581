import Foundation
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A real `nginx` (Debian's package) running a test's configuration as one foreground process
/// (`master_process off`), started under `setpriv --pdeathsig SIGKILL` so it dies with the test
/// process, killed and reaped when the test lets go of it. Start-up waits, with a deadline, until
/// nginx answers HTTP on `port`; an nginx that cannot start throws with its error log.
public final class NginxServer: Sendable {
    public let port: Int
    public let pid: pid_t
    private let directory: URL
    private let running = Atomic<Bool>(true)

    private init(port: Int, pid: pid_t, directory: URL) {
        self.port = port
        self.pid = pid
        self.directory = directory
    }

    /// Runs `httpConfiguration` (the inside of nginx's `http { }` block) and waits until nginx
    /// answers on 127.0.0.1:`port`, one of the ports it listens on.
    public static func start(httpConfiguration: String, port: Int, timeout: Duration = .seconds(10)) async throws -> NginxServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nginx-\(port)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("temp"), withIntermediateDirectories: true)
        let path = directory.path
        let configuration = """
            daemon off;
            master_process off;
            pid \(path)/nginx.pid;
            error_log \(path)/error.log warn;
            events { worker_connections 256; }
            http {
                access_log off;
                client_body_temp_path \(path)/temp/body;
                proxy_temp_path \(path)/temp/proxy;
                fastcgi_temp_path \(path)/temp/fastcgi;
                uwsgi_temp_path \(path)/temp/uwsgi;
                scgi_temp_path \(path)/temp/scgi;
            \(httpConfiguration)
            }
            """
        try configuration.write(to: directory.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        let argv = ["nginx", "-p", path, "-c", "\(path)/nginx.conf"]
        let pid = try await NIOThreadPool.singleton.runIfActive { try spawnDyingWithParent(argv) }
        let server = NginxServer(port: port, pid: pid, directory: directory)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if server.hasExited() { break }
            if (try? await HTTPTestClient.request("GET", port: port, "/", timeout: .seconds(1))) != nil { return server }
            try await Task.sleep(for: .milliseconds(20))
        }
        let log = (try? String(contentsOf: directory.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
        await server.stop()
        throw TestServerError("nginx did not answer on port \(port) within \(timeout): \(log)")
    }

    /// SIGTERM (nginx's fast shutdown), SIGKILL after 10 s; returns once the process is reaped.
    public func stop() async {
        guard running.exchange(false, ordering: .relaxed) else { return }
        Glibc.kill(pid, SIGTERM)
        let killAt = ContinuousClock.now + .seconds(10)
        while !reapIfExited(pid) {
            if ContinuousClock.now >= killAt { Glibc.kill(pid, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    deinit {
        if running.exchange(false, ordering: .relaxed) { killAndReapInTheBackground(pid) }
        try? FileManager.default.removeItem(at: directory)
    }

    private func hasExited() -> Bool {
        guard reapIfExited(pid) else { return false }
        running.store(false, ordering: .relaxed)
        return true
    }
}
