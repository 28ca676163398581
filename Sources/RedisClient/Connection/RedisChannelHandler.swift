import NIOCore

/// Pipelines commands over one channel and matches replies to callers in FIFO order.
///
/// - Every written ``RedisRequest`` joins a FIFO; each reply hiredis parses completes the oldest entry
///   (a request of several commands, once all their replies came).
/// - An error reply fails only its own command (in a request of several, it is one of their replies).
/// - A caller that gave up (cancelled) keeps its place in the FIFO: its reply is read and dropped,
///   so it never shifts replies onto other callers.
/// - When the oldest command passes its deadline the server is considered stuck: that command fails
///   with `timeout`, the connection is closed and every other pending command fails at once.
/// - A broken connection or a protocol error fails every pending command at once; after a protocol
///   error (sticky in hiredis) the connection is closed.
/// - Writes are flushed once per event-loop tick, so commands from many concurrent callers leave in
///   one syscall.
///
/// Lives on its channel's event loop; the hiredis reader never leaves it.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        let promise: EventLoopPromise<RESPValue>
        let deadline: NIODeadline
        /// Replies still owed to a request of several commands, and those already read.
        var outstanding: Int
        var replies: [RESPValue] = []
    }

    private let reader = RESPReplyReader()
    private let commandTimeout: TimeAmount
    private var pending = CircularBuffer<Pending>()
    private var isClosed = false
    private var flushScheduled = false
    private var deadlineTimer: Scheduled<Void>?
    /// Why the connection ended, for the error pending and later commands receive.
    private var closeReason: RedisClientError?

    /// Receives replies nobody asked for: the messages of a `SUBSCRIBE`d connection. Without it
    /// such a reply is a protocol error.
    private let onPush: (@Sendable (RESPValue) -> Void)?

    init(commandTimeout: TimeAmount, onPush: (@Sendable (RESPValue) -> Void)? = nil) {
        self.commandTimeout = commandTimeout
        self.onPush = onPush
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        guard !isClosed else {
            request.promise.fail(closeReason ?? .connectionClosed("the connection to Redis is closed"))
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        var entry = Pending(promise: request.promise, deadline: context.eventLoop.now + commandTimeout, outstanding: request.replies)
        // A pipeline's replies are gathered in one array made once, at its full size.
        if request.replies > 1 { entry.replies.reserveCapacity(request.replies) }
        pending.append(entry)
        context.write(wrapOutboundOut(request.encoded), promise: promise)
        armDeadlineTimer(context: context)
        if !flushScheduled {
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute {
                self.flushScheduled = false
                context.flush()
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do throws(RedisClientError) {
            var failure: RedisClientError?
            buffer.withUnsafeReadableBytes { bytes in
                do throws(RedisClientError) { try reader.feed(bytes) } catch { failure = error }
            }
            if let failure { throw failure }
            // hiredis may now hold several complete replies (or none): drain them all.
            while let reply = try reader.next() {
                guard !pending.isEmpty else {
                    guard let onPush else { throw .protocolError("Redis sent a reply nobody asked for") }
                    onPush(reply)
                    continue
                }
                if pending[pending.startIndex].outstanding > 1 {
                    // In place (the subscript's get and set would copy the array on every append).
                    pending.modify(pending.startIndex) { entry in
                        entry.outstanding -= 1
                        entry.replies.append(reply)
                    }
                    continue
                }
                var entry = pending.removeFirst()
                if !entry.replies.isEmpty {
                    entry.replies.append(reply)
                    entry.promise.succeed(.array(entry.replies))
                } else if case .error(let message) = reply {
                    entry.promise.fail(RedisClientError.serverError(message))
                } else {
                    entry.promise.succeed(reply)
                }
            }
        } catch {
            shutDown(context: context, reason: error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(closeReason ?? .connectionClosed("the connection to Redis was closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        shutDown(context: context, reason: .connectionClosed("the connection to Redis failed: \(error)"))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(closeReason ?? .connectionClosed("the connection to Redis was closed"))
    }

    /// Fails every pending command with `reason` and closes the channel.
    private func shutDown(context: ChannelHandlerContext, reason: RedisClientError) {
        if closeReason == nil { closeReason = reason }
        failAll(reason)
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisClientError) {
        isClosed = true
        deadlineTimer?.cancel()
        deadlineTimer = nil
        while let entry = pending.popFirst() {
            entry.promise.fail(error)
        }
    }

    /// Keeps one timer armed for the oldest pending command's deadline.
    private func armDeadlineTimer(context: ChannelHandlerContext) {
        guard deadlineTimer == nil, let oldest = pending.first else { return }
        deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: oldest.deadline) {
            self.deadlineTimer = nil
            self.checkDeadline(context: context)
        }
    }

    private func checkDeadline(context: ChannelHandlerContext) {
        guard let oldest = pending.first else { return }
        guard oldest.deadline <= context.eventLoop.now else {
            armDeadlineTimer(context: context)
            return
        }
        // Replies come in order, so every later command is stuck behind this one too.
        let milliseconds = commandTimeout.nanoseconds / 1_000_000
        oldest.promise.fail(RedisClientError.timeout("Redis did not answer within \(milliseconds) ms"))
        pending.removeFirst()
        shutDown(
            context: context,
            reason: .connectionClosed("the connection was dropped after a command got no reply within \(milliseconds) ms")
        )
    }
}
