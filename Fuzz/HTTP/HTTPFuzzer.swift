// libFuzzer entry point for the HTTP request path: each input is the bytes a client sends on one
// connection, fed to the connection setup every sessiond connection gets (NIO's HTTP/1.1 decoder,
// RequestLineWatcher, HTTPResponderHandler, the routes, the JSON body decoding, the store) in
// front of a real Redis (FUZZ_REDIS_URL; scripts/fuzz.sh starts one). The client then closes its
// side. Any input: no crash, no hang (the connection must close), and no 500 (bad input gets its
// 4xx); whatever is written back starts as an HTTP/1.1 response.
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOEmbedded

@testable import SessionService

/// Quiet: every input is a connection, and most are refused.
let logger: Logger = {
    var logger = Logger(label: "fuzz")
    logger.logLevel = .critical
    return logger
}()

/// Built once for the whole run: a sessiond without a listening socket.
let connectionSetup: SessionHTTPChannel = {
    var configuration = SessionServiceConfiguration()
    configuration.redisURL = ProcessInfo.processInfo.environment["FUZZ_REDIS_URL"] ?? "redis://127.0.0.1:6379"
    configuration.keyPrefix = "fuzz:"
    do {
        let (redis, connection, _, _, _) = try SessionServiceApplication.connectionSetup(configuration: configuration, logger: logger)
        Task { await redis.run() }
        return connection
    } catch {
        fatalError("the fuzzer's sessiond cannot be built: \(error)")
    }
}()
let client = try! SocketAddress(ipAddress: "127.0.0.1", port: 40000)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    let done = DispatchSemaphore(value: 0)
    Task {
        defer { done.signal() }
        do {
            try await exchange(bytes)
        } catch {
            fatalError("the connection failed: \(error)")
        }
    }
    done.wait()
    return 0
}

/// One connection: the bytes in, the input closed, every answer read until the connection closes.
func exchange(_ bytes: ByteBuffer) async throws {
    let channel = NIOAsyncTestingChannel()
    _ = try await channel.eventLoop.flatSubmit { connectionSetup.setup(channel: channel, logger: logger) }.get()
    try await channel.connect(to: client)
    try await channel.writeInbound(bytes)
    try await channel.eventLoop.submit { channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }.get()
    // The answers owed are written, then the connection closes (a hang here is libFuzzer's timeout).
    try await channel.closeFuture.get()
    var written = ByteBuffer()
    while var part = try await channel.readOutbound(as: ByteBuffer.self) {
        written.writeBuffer(&part)
    }
    let text = String(buffer: written)
    if !text.isEmpty && !text.hasPrefix("HTTP/1.1 ") {
        fatalError("the answer does not start as an HTTP/1.1 response: \(text.prefix(200))")
    }
    if text.contains("HTTP/1.1 500 ") {
        fatalError("an input was answered 500: \(text.prefix(2000))")
    }
}
