import NIOCore

/// One encoded command on its way into ``RedisChannelHandler``, with the promise its reply completes.
struct RedisRequest: Sendable {
    var encoded: ByteBuffer
    var promise: EventLoopPromise<RESPValue>
}
