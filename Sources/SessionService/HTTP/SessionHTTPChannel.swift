import HummingbirdCore
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// The HTTP/1.1 connection setup of sessiond, for Hummingbird's `Server`: NIO's HTTP codec,
/// Hummingbird's connection-state handler (idle timeout, closing on graceful shutdown) and
/// ``HTTPResponderHandler``, which answers every request through the router.
struct SessionHTTPChannel: ServerChildChannel {
    /// The connection, open until it closes.
    struct Value: ServerChildChannelValue {
        let channel: any Channel
    }

    let responder: HTTPResponderHandler.Responder
    let serverName: String
    let bodyLimit: Int
    /// How long a connection may wait for its next request.
    let idleTimeout: Duration
    /// While draining, every answer closes its connection.
    var drain = Drain()

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            // Pipelining and errors are HTTPResponderHandler's; header values are validated by
            // HTTPTypes already, so NIO's second validation of every response is left out.
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false
            )
            let requestLine = RequestLineWatcher()
            try pipeline.addHandler(requestLine, position: .first)
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: idleTimeout, logger: logger))
            try pipeline.addHandler(
                HTTPResponderHandler(
                    responder: responder, logger: logger, serverName: serverName, bodyLimit: bodyLimit, requestLine: requestLine,
                    drain: drain
                )
            )
            return Value(channel: channel)
        }
    }

    /// The server tracks each connection until this returns: at its close. Cancelled (the server
    /// stopped without a graceful shutdown), it closes the connection's input, as Hummingbird's own
    /// connection loop does: the answers owed are written, then the connection closes.
    func handle(value: Value, logger: Logger) async {
        await withTaskCancellationHandler {
            try? await value.channel.closeFuture.get()
        } onCancel: {
            value.channel.close(mode: .input, promise: nil)
        }
    }
}
