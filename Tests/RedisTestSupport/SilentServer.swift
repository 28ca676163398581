import NIOCore
import NIOPosix

/// A TCP listener on a free loopback port that accepts every connection and never answers: a host
/// whose process hangs (a stuck sentinel, say). Closed when the test lets go of it.
public final class SilentServer: Sendable {
    /// The TCP port on 127.0.0.1.
    public let port: Int
    private let channel: any Channel

    private init(port: Int, channel: any Channel) {
        self.port = port
        self.channel = channel
    }

    public static func start() async throws -> SilentServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in channel.eventLoop.makeSucceededVoidFuture() }  // reads and ignores
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = channel.localAddress?.port else { throw TestServerError("the silent server has no port") }
        return SilentServer(port: port, channel: channel)
    }

    deinit {
        channel.close(promise: nil)
    }
}
