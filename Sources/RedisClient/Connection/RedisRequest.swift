import NIOCore

/// One encoded command (or block of commands) on its way into ``RedisChannelHandler``, with the
/// promise its reply completes.
struct RedisRequest: Sendable {
    var encoded: ByteBuffer
    var promise: EventLoopPromise<RESPValue>
    /// How many replies `encoded` asks for. One completes the promise with that reply (an error
    /// reply fails it); more complete it with the array of them all, error replies included as
    /// ``RESPValue/error(_:)``: a `MULTI` block's replies are read together by its caller.
    var replies = 1
}
