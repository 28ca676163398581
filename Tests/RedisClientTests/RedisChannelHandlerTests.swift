import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import RedisClient

/// The pipelining handler on NIO's embedded channel: replies fed by hand, time advanced by hand.
/// Deterministic, no Redis, no sockets.
@Suite struct RedisChannelHandlerTests {
    /// What became of one command's reply promise.
    final class Outcome: Sendable {
        private let result = Mutex<Result<RESPValue, any Error>?>(nil)

        init(_ future: EventLoopFuture<RESPValue>) {
            future.whenComplete { result in self.result.withLock { $0 = result } }
        }

        var reply: RESPValue? { result.withLock { try? $0?.get() } }
        var isPending: Bool { result.withLock { $0 == nil } }
        var errorCode: RedisClientError.Code? {
            result.withLock { result in
                guard case .failure(let error as RedisClientError) = result else { return nil }
                return error.code
            }
        }
        var isCancelled: Bool {
            result.withLock { result in
                guard case .failure(let error) = result else { return false }
                return error is CancellationError
            }
        }
    }

    /// An active embedded channel with the handler, as a connection has it.
    static func connectedChannel(
        commandTimeout: TimeAmount = .seconds(1), onPush: (@Sendable (RESPValue) -> Void)? = nil
    ) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(RedisChannelHandler(commandTimeout: commandTimeout, onPush: onPush))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379)).wait()
        return channel
    }

    /// Writes one command into the channel the way ``RedisConnection`` does; returns its promise.
    static func send(_ arguments: [RedisArgument], on channel: EmbeddedChannel) throws -> (EventLoopPromise<RESPValue>, Outcome) {
        var buffer = channel.allocator.buffer(capacity: 32)
        try RESPCommandEncoder.encode(arguments, into: &buffer)
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        channel.write(RedisRequest(encoded: buffer, promise: promise), promise: nil)
        return (promise, Outcome(promise.futureResult))
    }

    /// Everything the handler wrote to the socket so far, as text.
    static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        return text
    }

    @Test func repliesCompleteCommandsInTheOrderTheyWereSentAndCommandsLeaveInOneFlush() throws {
        let channel = try Self.connectedChannel()
        let (_, first) = try Self.send(["GET", "a"], on: channel)
        let (_, second) = try Self.send(["GET", "b"], on: channel)
        let (_, third) = try Self.send(["INCR", "c"], on: channel)
        #expect(try Self.written(channel).isEmpty, "nothing leaves before the loop's tick ends")
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel) == "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n")
        // All three replies in one read, split mid-reply.
        try channel.writeInbound(ByteBuffer(string: "$1\r\nA\r\n$1\r"))
        #expect(first.reply == .bulkString(Array("A".utf8)))
        #expect(second.isPending)
        try channel.writeInbound(ByteBuffer(string: "\nB\r\n:7\r\n"))
        #expect(second.reply == .bulkString(Array("B".utf8)))
        #expect(third.reply == .integer(7))
        #expect(channel.isActive)
    }

    @Test func anErrorReplyFailsOnlyItsOwnCommand() throws {
        let channel = try Self.connectedChannel()
        let (_, before) = try Self.send(["SET", "k", "v"], on: channel)
        let (_, failing) = try Self.send(["INCR", "k"], on: channel)
        let (_, after) = try Self.send(["GET", "k"], on: channel)
        channel.embeddedEventLoop.run()
        try channel.writeInbound(ByteBuffer(string: "+OK\r\n-ERR value is not an integer\r\n$1\r\nv\r\n"))
        #expect(before.reply == .simpleString("OK"))
        #expect(failing.errorCode == .serverError)
        #expect(after.reply == .bulkString(Array("v".utf8)))
        #expect(channel.isActive)
    }

    @Test func aBlockOfSeveralCommandsGetsAllItsRepliesTogetherErrorsIncluded() throws {
        let channel = try Self.connectedChannel()
        var buffer = channel.allocator.buffer(capacity: 64)
        let block = RedisPayload.transaction([["INCR", "k"], ["GET", "k"]])
        let replies = try block.encoded(into: &buffer)
        #expect(replies == 4)
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        channel.write(RedisRequest(encoded: buffer, promise: promise, replies: replies), promise: nil)
        let blockOutcome = Outcome(promise.futureResult)
        let (_, after) = try Self.send(["ECHO", "after"], on: channel)
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel).hasPrefix("*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n"))
        try channel.writeInbound(ByteBuffer(string: "+OK\r\n+QUEUED\r\n+QUEUED\r\n"))
        #expect(blockOutcome.isPending, "three of its four replies")
        try channel.writeInbound(ByteBuffer(string: "*2\r\n-ERR value is not an integer\r\n$1\r\nv\r\n$5\r\nafter\r\n"))
        let reply = try #require(blockOutcome.reply)
        #expect(reply == .array([
            .simpleString("OK"), .simpleString("QUEUED"), .simpleString("QUEUED"),
            .array([.error("ERR value is not an integer"), .bulkString(Array("v".utf8))]),
        ]))
        #expect(after.reply == .bulkString(Array("after".utf8)), "the next command gets the next reply")
        // What the caller sees: the first error, as the failing command's own.
        #expect(throws: RedisClientError.serverError("ERR value is not an integer")) { try block.result(of: reply) }
        #expect(channel.isActive)
    }

    @Test func aBlockRefusedWhileQueueingFailsWithThatRefusal() throws {
        let block = RedisPayload.transaction([["FCALL", "f", "1", "k"], ["HGETALL", "k"]])
        let aborted = RESPValue.array([
            .simpleString("OK"), .error("MOVED 12182 127.0.0.1:7001"), .simpleString("QUEUED"),
            .error("EXECABORT Transaction discarded because of previous errors."),
        ])
        #expect(throws: RedisClientError.serverError("MOVED 12182 127.0.0.1:7001")) { try block.result(of: aborted) }
        let ran = RESPValue.array([.simpleString("OK"), .simpleString("QUEUED"), .simpleString("QUEUED"), .array([.integer(1), .array([])])])
        #expect(try block.result(of: ran) == .array([.integer(1), .array([])]))
        #expect(throws: RedisClientError.self) { try block.result(of: .array([.simpleString("OK")])) }
    }

    /// Redis forgets `ASKING` after the next command, so nothing may come between them: they are
    /// one request, one buffer, and the caller gets the command's reply (or its error, such as a
    /// MOVED back from a node that no longer imports the slot).
    @Test func askingAndItsCommandAreOneRequestAndTheCallerGetsTheCommandsReply() throws {
        let channel = try Self.connectedChannel()
        let (_, before) = try Self.send(["GET", "other"], on: channel)
        var buffer = channel.allocator.buffer(capacity: 64)
        let read = RedisPayload.command(["ZRANGE", "sd:u:{alice}", "0", "-1"])
        let replies = try read.encoded(into: &buffer, afterAsking: true)
        #expect(replies == 2)
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        channel.write(RedisRequest(encoded: buffer, promise: promise, replies: replies), promise: nil)
        let asked = Outcome(promise.futureResult)
        let (_, after) = try Self.send(["GET", "next"], on: channel)
        channel.embeddedEventLoop.run()
        #expect(try Self.written(channel).contains("*1\r\n$6\r\nASKING\r\n*4\r\n$6\r\nZRANGE\r\n"), "ASKING right before its command")
        try channel.writeInbound(ByteBuffer(string: "$-1\r\n+OK\r\n*1\r\n$2\r\nid\r\n$-1\r\n"))
        #expect(before.reply == .null && after.reply == .null)
        let reply = try #require(asked.reply)
        #expect(try read.result(of: reply, afterAsking: true) == .array([.bulkString(Array("id".utf8))]))
        let moved = RESPValue.array([.simpleString("OK"), .error("MOVED 42 127.0.0.1:7000")])
        #expect(throws: RedisClientError.serverError("MOVED 42 127.0.0.1:7000")) { try read.result(of: moved, afterAsking: true) }
        let block = RedisPayload.transaction([["FCALL", "f", "1", "k"], ["HGETALL", "k"]])
        let ranAfterAsking = RESPValue.array([
            .simpleString("OK"), .simpleString("OK"), .simpleString("QUEUED"), .simpleString("QUEUED"), .array([.integer(1), .array([])]),
        ])
        #expect(try block.result(of: ranAfterAsking, afterAsking: true) == .array([.integer(1), .array([])]))
    }

    @Test func aCommandPastItsDeadlineFailsWithTimeoutAndTheConnectionIsDropped() throws {
        let channel = try Self.connectedChannel(commandTimeout: .milliseconds(100))
        let (_, stuck) = try Self.send(["BLPOP", "q", "0"], on: channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        let (_, behind) = try Self.send(["GET", "k"], on: channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(49))
        #expect(stuck.isPending, "not before its deadline")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(stuck.errorCode == .timeout)
        #expect(behind.errorCode == .connectionClosed, "replies come in order: the one behind it is stuck too")
        #expect(!channel.isActive)
    }

    @Test func aCancelledCallerKeepsItsPlaceSoItsReplyGoesNowhereElse() throws {
        let channel = try Self.connectedChannel()
        let (cancelledPromise, cancelled) = try Self.send(["GET", "mine"], on: channel)
        let (_, next) = try Self.send(["GET", "yours"], on: channel)
        channel.embeddedEventLoop.run()
        cancelledPromise.fail(CancellationError())  // what RedisConnection does when its caller is cancelled
        try channel.writeInbound(ByteBuffer(string: "$4\r\nmine\r\n"))
        #expect(next.isPending, "the cancelled command's reply was dropped, not handed to the next caller")
        try channel.writeInbound(ByteBuffer(string: "$5\r\nyours\r\n"))
        #expect(next.reply == .bulkString(Array("yours".utf8)))
        #expect(cancelled.isCancelled)
    }

    @Test func aReplyNobodyAskedForIsAProtocolErrorThatDropsTheConnection() throws {
        let channel = try Self.connectedChannel()
        #expect(throws: Never.self) { try channel.writeInbound(ByteBuffer(string: "+surprise\r\n")) }
        #expect(!channel.isActive)
        // Later commands fail at once instead of waiting for a reply that cannot come.
        let (_, later) = try Self.send(["PING"], on: channel)
        #expect(later.errorCode == .protocolError)
    }

    @Test func unrequestedMessagesGoToThePushHandlerOfASubscribedConnection() throws {
        let pushes = Mutex<[RESPValue]>([])
        let channel = try Self.connectedChannel { message in pushes.withLock { $0.append(message) } }
        try channel.writeInbound(ByteBuffer(string: "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"))
        #expect(pushes.withLock { $0.count } == 1)
        #expect(channel.isActive)
    }

    @Test func bytesThatAreNotRESPFailEveryPendingCommand() throws {
        let channel = try Self.connectedChannel()
        let (_, first) = try Self.send(["GET", "a"], on: channel)
        let (_, second) = try Self.send(["GET", "b"], on: channel)
        channel.embeddedEventLoop.run()
        try channel.writeInbound(ByteBuffer(string: "!not resp\r\n"))
        #expect(first.errorCode == .protocolError)
        #expect(second.errorCode == .protocolError)
        #expect(!channel.isActive)
    }

    @Test func aBrokenConnectionFailsEveryPendingCommand() throws {
        let channel = try Self.connectedChannel()
        let (_, first) = try Self.send(["GET", "a"], on: channel)
        let (_, second) = try Self.send(["GET", "b"], on: channel)
        channel.embeddedEventLoop.run()
        try channel.close().wait()
        #expect(first.errorCode == .connectionClosed)
        #expect(second.errorCode == .connectionClosed)
    }
}
