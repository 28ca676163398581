import NIOCore
import NIOPosix
import Synchronization

/// A TCP connection that sends exactly the bytes a test gives it and keeps every byte that comes
/// back, for what an HTTP client library would hide: half-closing, pausing mid-request, never
/// reading. Every wait has a deadline.
public final class RawTCPConnection: Sendable {
    private let channel: any Channel
    private let received: Received

    private init(channel: any Channel, received: Received) {
        self.channel = channel
        self.received = received
    }

    deinit {
        channel.close(promise: nil)
    }

    /// Connects to 127.0.0.1:`port`. With `reads: false` the connection never reads: what the
    /// server sends stays in the kernel's buffers (kept small here), as with a client that stopped
    /// reading.
    public static func connect(port: Int, reads: Bool = true) async throws -> RawTCPConnection {
        let received = Received()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(received) }
            }
        if !reads {
            bootstrap = bootstrap
                .channelOption(ChannelOptions.autoRead, value: false)
                .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 4096)
                .channelOption(ChannelOptions.socketOption(.so_sndbuf), value: 65536)
        }
        let channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
        return RawTCPConnection(channel: channel, received: received)
    }

    public func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// `shutdown(SHUT_WR)`: the server reads the end of the stream; this side can still read.
    public func shutdownOutput() async throws {
        try await channel.close(mode: .output)
    }

    /// Everything received so far, as text.
    public var text: String { received.text }

    /// Whether the server has closed the connection (or it broke).
    public var isClosed: Bool { received.isClosed }

    /// Waits for the server to close the connection; returns everything it sent.
    public func textUntilClosed(timeout: Duration = .seconds(10)) async throws -> String {
        guard await eventually(timeout: timeout, { self.isClosed }) else { throw RawTCPConnectionError.stillOpen }
        return text
    }

    /// Writes `chunk` again and again while the connection takes it, until the server stops taking
    /// bytes for `stall` or `limit` bytes went out. Returns the bytes the kernel accepted.
    public func sendUntilStalled(_ chunk: String, stall: Duration, limit: Int, timeout: Duration = .seconds(60)) async throws -> Int {
        let buffer = ByteBuffer(string: chunk)
        let accepted = Atomic<Int>(0)
        let deadline = ContinuousClock.now + timeout
        var lastProgress = (bytes: 0, at: ContinuousClock.now)
        while ContinuousClock.now < deadline {
            let total = accepted.load(ordering: .relaxed)
            if total >= limit { return total }
            if total != lastProgress.bytes {
                lastProgress = (total, .now)
            } else if ContinuousClock.now - lastProgress.at >= stall {
                return total
            }
            if channel.isWritable, !isClosed {
                // Many writes per flush: keep the socket full without one task hop per request.
                for _ in 0..<64 {
                    channel.write(buffer).whenSuccess { accepted.add(buffer.readableBytes, ordering: .relaxed) }
                }
                channel.flush()
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw RawTCPConnectionError.timeout
    }

    public func close() async {
        try? await channel.close()
    }
}

public enum RawTCPConnectionError: Error {
    case stillOpen
    case timeout
}

/// Keeps what arrives and whether the server closed.
private final class Received: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let state = Mutex<(bytes: [UInt8], closed: Bool)>(([], false))

    var text: String { state.withLock { String(decoding: $0.bytes, as: UTF8.self) } }
    var isClosed: Bool { state.withLock { $0.closed } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        state.withLock { $0.bytes.append(contentsOf: buffer.readableBytesView) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            state.withLock { $0.closed = true }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.withLock { $0.closed = true }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
