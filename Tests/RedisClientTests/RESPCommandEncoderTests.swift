import NIOCore
import Testing

@testable import RedisClient

/// Commands are encoded as RESP multi-bulk requests, binary-safe.
@Suite struct RESPCommandEncoderTests {
    @Test func encodesArgumentsAsBulkStrings() throws {
        var buffer = ByteBuffer()
        try RESPCommandEncoder.encode(["SET", "key", "value"], into: &buffer)
        #expect(buffer.readString(length: buffer.readableBytes) == "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")
    }

    @Test func encodingIsBinarySafe() throws {
        let binary = RedisArgument(bytes: [0, 13, 10, 0, 255])
        var buffer = ByteBuffer()
        try RESPCommandEncoder.encode(["SET", RedisArgument(bytes: []), binary], into: &buffer)
        // A multi-bulk request is also a valid reply, so the reader can check the round trip.
        let reader = RESPReplyReader()
        try reader.feed(buffer.readBytes(length: buffer.readableBytes)!)
        #expect(try reader.next() == .array([.bulkString(Array("SET".utf8)), .bulkString([]), .bulkString(binary.bytes)]))
    }

    @Test func refusesAnEmptyCommand() {
        var buffer = ByteBuffer()
        #expect(throws: RedisClientError.self) { try RESPCommandEncoder.encode([], into: &buffer) }
    }
}
