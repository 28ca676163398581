import CHiredis
import NIOCore

/// Incremental RESP2 reply parser over hiredis' `redisReader`.
///
/// Feed it bytes as they arrive, in pieces of any size, then call ``next()`` until it returns
/// `nil`: each call yields one complete reply as a ``RESPValue``. hiredis parses; the values are
/// built by reply-object functions of our own (``ReplyBuilder``) straight into Swift values, with
/// all of a reply's bulk strings in one buffer: an `HGETALL` of a session's 8 fields costs its
/// array and that buffer, where hiredis' own functions made 34 objects and we then copied each
/// string again.
/// A protocol error is sticky in hiredis: after one, the reader stays broken and the owner must
/// drop the connection.
///
/// Not thread-safe; owned by one channel handler on its event loop.
final class RESPReplyReader {
    private let reader: UnsafeMutablePointer<redisReader>
    private let builder = ReplyBuilder()

    init() {
        guard let reader = redisReaderCreateWithFunctions(ReplyBuilder.functions) else {
            // hiredis only fails here when malloc does; there is nothing sensible to continue with.
            fatalError("hiredis could not allocate a reply reader")
        }
        self.reader = reader
        // Unretained: the builder lives as long as this reader, which frees hiredis' first.
        reader.pointee.privdata = Unmanaged.passUnretained(builder).toOpaque()
        builder.reader = reader
    }

    deinit {
        redisReaderFree(reader)
    }

    /// Hands `bytes` to hiredis, which copies them into its own buffer.
    /// - Throws: `.protocolError` when the reader is already broken by an earlier protocol error.
    func feed(_ bytes: UnsafeRawBufferPointer) throws(RedisClientError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        if redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count) != REDIS_OK {
            throw .protocolError(currentError())
        }
    }

    /// Feeds a byte array; convenient for tests.
    func feed(_ bytes: [UInt8]) throws(RedisClientError) {
        let copy = bytes
        var failure: RedisClientError?
        copy.withUnsafeBytes { buffer in
            do throws(RedisClientError) { try feed(buffer) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// The next complete reply, or `nil` when more bytes are needed.
    /// A top-level error reply is returned as `.error`; the caller decides what it means.
    /// - Throws: ``RedisClientError`` `.protocolError` when the stream is not valid RESP.
    func next() throws(RedisClientError) -> RESPValue? {
        var raw: UnsafeMutableRawPointer? = nil
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
            builder.reset()
            throw .protocolError(currentError())
        }
        guard raw != nil else { return nil }
        return builder.takeReply()
    }

    private func currentError() -> String {
        String(cString: chiredis_reader_error(reader))
    }
}

/// hiredis' reply-object functions, building ``RESPValue``s as hiredis parses.
///
/// hiredis calls them in the reply's order, an array's own call (with its length) before its
/// elements'. They note each value in a flat list and copy each string's bytes into one buffer for
/// the whole reply; when the reply is complete, the tree is made from the list, every bulk string
/// a slice of that buffer (taken only then: a slice taken earlier would make each later write
/// copy the buffer). What the functions return is only a token for hiredis (which needs a
/// non-`NULL` object per element, and never reads it).
private final class ReplyBuilder {
    private enum Node {
        /// A bulk string, in ``storage``.
        case string(offset: Int, length: Int)
        /// A status or error reply (short text: a `String` of its own, often held inline).
        case text(String, isError: Bool)
        case integer(Int64)
        case null
        case array(count: Int)
    }

    /// The reply's values so far, in order (capacity kept from reply to reply).
    private var nodes: [Node] = []
    /// How many values each array being filled still awaits, innermost last (capacity kept).
    private var awaited: [Int] = []
    /// The reply's string bytes; made at the reply's first string.
    private var storage: ByteBuffer?
    private var reply: RESPValue?
    /// The reader, for how many bytes it holds (the size of a reply's buffer).
    var reader: UnsafeMutablePointer<redisReader>?

    func takeReply() -> RESPValue? {
        defer { reply = nil }
        return reply
    }

    /// Drops a reply left half-built by a protocol error.
    func reset() {
        nodes.removeAll(keepingCapacity: true)
        awaited.removeAll(keepingCapacity: true)
        storage = nil
        reply = nil
    }

    private func add(_ node: Node) {
        nodes.append(node)
        if case .array(let count) = node, count > 0 {
            awaited.append(count)
            return
        }
        // A value is complete: so is each array it completes, up to the reply.
        while let last = awaited.indices.last {
            awaited[last] -= 1
            guard awaited[last] == 0 else { return }
            awaited.removeLast()
        }
        var position = 0
        reply = make(&position)
        nodes.removeAll(keepingCapacity: true)
        storage = nil
    }

    /// The value whose node is at `position` (with its elements), moving `position` past it.
    private func make(_ position: inout Int) -> RESPValue {
        let node = nodes[position]
        position += 1
        switch node {
        case .string(let offset, let length):
            return .bulkString(storage!.getSlice(at: offset, length: length)!)
        case .text(let text, let isError):
            return isError ? .error(text) : .simpleString(text)
        case .integer(let value): return .integer(value)
        case .null: return .null
        case .array(let count):
            var elements: [RESPValue] = []
            elements.reserveCapacity(count)
            for _ in 0..<count { elements.append(make(&position)) }
            return .array(elements)
        }
    }

    private func addString(type: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard type == REDIS_REPLY_STRING else {
            return add(.text(String(decoding: bytes, as: UTF8.self), isError: type == REDIS_REPLY_ERROR))
        }
        if storage == nil {
            // Room for what hiredis holds (this reply, or more when replies were pipelined),
            // within bounds: a larger reply grows the buffer.
            let held = reader.map { $0.pointee.len - $0.pointee.pos } ?? 0
            storage = ByteBufferAllocator().buffer(capacity: min(max(held, bytes.count, 64), 4096))
        }
        let offset = storage!.writerIndex
        storage!.writeBytes(bytes)
        add(.string(offset: offset, length: bytes.count))
    }

    /// The token returned for every object: any non-`NULL` pointer (hiredis takes `NULL` for out of memory).
    private var token: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    private static func builder(_ task: UnsafePointer<redisReadTask>?) -> ReplyBuilder {
        Unmanaged<ReplyBuilder>.fromOpaque(task!.pointee.privdata).takeUnretainedValue()
    }

    /// One table for every reader (hiredis keeps the pointer).
    nonisolated(unsafe) static let functions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
        let functions = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        functions.initialize(
            to: redisReplyObjectFunctions(
                createString: { task, text, length in
                    let builder = builder(task)
                    builder.addString(type: task!.pointee.type, UnsafeRawBufferPointer(start: length > 0 ? text : nil, count: length))
                    return builder.token
                },
                createArray: { task, count in
                    let builder = builder(task)
                    builder.add(.array(count: Int(count)))
                    return builder.token
                },
                createInteger: { task, value in
                    let builder = builder(task)
                    builder.add(.integer(Int64(value)))
                    return builder.token
                },
                createNil: { task in
                    let builder = builder(task)
                    builder.add(.null)
                    return builder.token
                },
                // hiredis frees the root of a reply it abandons (a protocol error, the reader
                // freed mid-reply); ``RESPReplyReader`` resets the builder itself then.
                freeObject: { _ in }
            )
        )
        return functions
    }()
}
