import Testing

@testable import RedisClient

/// The hiredis-backed reader turns RESP2 bytes into values, however the bytes are split.
@Suite struct RESPReplyReaderTests {
    /// Every RESP2 reply type, and nesting, with the value it must decode to.
    static let cases: [(bytes: String, value: RESPValue)] = [
        ("+OK\r\n", .simpleString("OK")),
        ("-ERR unknown command 'FOO'\r\n", .error("ERR unknown command 'FOO'")),
        (":0\r\n", .integer(0)),
        (":-9223372036854775808\r\n", .integer(Int64.min)),
        (":9223372036854775807\r\n", .integer(Int64.max)),
        ("$5\r\nhello\r\n", .bulkString(Array("hello".utf8))),
        ("$0\r\n\r\n", .bulkString([])),
        ("$-1\r\n", .null),
        ("*-1\r\n", .null),
        ("*0\r\n", .array([])),
        ("$4\r\na\r\nb\r\n", .bulkString(Array("a\r\nb".utf8))),
        (
            "*3\r\n:1\r\n*2\r\n$1\r\nx\r\n*1\r\n$-1\r\n-WRONGTYPE bad\r\n",
            .array([.integer(1), .array([.bulkString([0x78]), .array([.null])]), .error("WRONGTYPE bad")])
        ),
        ("*2\r\n*0\r\n+\r\n", .array([.array([]), .simpleString("")])),
    ]

    @Test func decodesEveryReplyTypeFedWhole() throws {
        for (bytes, expected) in Self.cases {
            let reader = RESPReplyReader()
            try reader.feed(Array(bytes.utf8))
            #expect(try reader.next() == expected, "decoding \(bytes.debugDescription)")
            #expect(try reader.next() == nil, "nothing left after \(bytes.debugDescription)")
        }
    }

    @Test func decodesTheSameWhenSplitAtEveryByteBoundary() throws {
        for (text, expected) in Self.cases {
            let bytes = Array(text.utf8)
            for split in 1..<bytes.count {
                let reader = RESPReplyReader()
                try reader.feed(Array(bytes[..<split]))
                #expect(try reader.next() == nil, "incomplete prefix of \(text.debugDescription) must not decode")
                try reader.feed(Array(bytes[split...]))
                #expect(try reader.next() == expected, "\(text.debugDescription) split at \(split)")
            }
        }
    }

    @Test func decodesAStreamOfAllRepliesFedOneByteAtATime() throws {
        let stream = Self.cases.flatMap { Array($0.bytes.utf8) }
        let reader = RESPReplyReader()
        var decoded: [RESPValue] = []
        for byte in stream {
            try reader.feed([byte])
            while let value = try reader.next() { decoded.append(value) }
        }
        #expect(decoded == Self.cases.map(\.value))
    }

    @Test func drainsSeveralRepliesFromOneFeed() throws {
        let reader = RESPReplyReader()
        try reader.feed(Array("+A\r\n:2\r\n$1\r\nC\r\n".utf8))
        #expect(try reader.next() == .simpleString("A"))
        #expect(try reader.next() == .integer(2))
        #expect(try reader.next() == .bulkString([0x43]))
        #expect(try reader.next() == nil)
    }

    @Test func keepsBinaryBytesIntact() throws {
        let payload: [UInt8] = [0, 13, 10, 255, 0, 36, 42]
        let reader = RESPReplyReader()
        try reader.feed(Array("$\(payload.count)\r\n".utf8) + payload + Array("\r\n".utf8))
        #expect(try reader.next() == .bulkString(payload))
    }

    /// A protocol error inside an array leaves no half-built reply behind, and the reader broken.
    @Test func aProtocolErrorInsideAnArrayEndsTheReply() throws {
        for stream in ["*2\r\n:1\r\n?bad\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"] {
            let reader = RESPReplyReader()
            try reader.feed(Array(stream.utf8))
            #expect(throws: RedisClientError.self, "\(stream.debugDescription)") { try reader.next() }
            #expect(throws: RedisClientError.self) {
                try reader.feed(Array(":2\r\n".utf8))
                _ = try reader.next()
            }
        }
    }

    @Test func reportsAProtocolErrorAndStaysBroken() throws {
        let reader = RESPReplyReader()
        try reader.feed(Array("?what\r\n".utf8))
        #expect(throws: RedisClientError.self) { try reader.next() }
        // hiredis' reader errors are sticky: even valid input is refused afterwards.
        #expect(throws: RedisClientError.self) {
            try reader.feed(Array("+OK\r\n".utf8))
            _ = try reader.next()
        }
    }
}
