import CHiredis

/// Incremental RESP2 reply parser over hiredis' `redisReader`.
///
/// Feed it bytes as they arrive, in pieces of any size, then call ``next()`` until it returns
/// `nil`: each call yields one complete reply as a ``RESPValue``. hiredis parses; the values are
/// built by reply-object functions of our own (``ReplyBuilder``) straight into Swift values, so a
/// reply costs the allocations of its Swift values only, not also a hiredis object per element
/// (an `HGETALL` of 8 fields was 34 mallocs of hiredis' before any Swift value was made).
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
/// hiredis calls them in the reply's order: an array's own call (with its length) comes before its
/// elements', so the arrays being filled form a stack. What the functions return is only a token
/// for hiredis (which needs a non-`NULL` object per element, and never reads it): the values live
/// here until ``takeReply()``.
private final class ReplyBuilder {
    /// The arrays being filled, innermost last (its capacity is kept from reply to reply).
    private var open: [(elements: [RESPValue], count: Int)] = []
    private var reply: RESPValue?

    func takeReply() -> RESPValue? {
        defer { reply = nil }
        return reply
    }

    /// Drops a reply left half-built by a protocol error.
    func reset() {
        open.removeAll(keepingCapacity: true)
        reply = nil
    }

    private func add(_ value: RESPValue) {
        var value = value
        while let last = open.indices.last {
            open[last].elements.append(value)
            guard open[last].elements.count == open[last].count else { return }
            value = .array(open.removeLast().elements)
        }
        reply = value
    }

    private func openArray(count: Int) {
        guard count > 0 else { return add(.array([])) }
        var elements: [RESPValue] = []
        elements.reserveCapacity(count)
        open.append((elements, count))
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
                    let bytes = length > 0 ? UnsafeRawBufferPointer(start: text, count: length) : UnsafeRawBufferPointer(start: nil, count: 0)
                    switch task!.pointee.type {
                    case REDIS_REPLY_STATUS: builder.add(.simpleString(String(decoding: bytes, as: UTF8.self)))
                    case REDIS_REPLY_ERROR: builder.add(.error(String(decoding: bytes, as: UTF8.self)))
                    default: builder.add(.bulkString(Array(bytes)))
                    }
                    return builder.token
                },
                createArray: { task, count in
                    let builder = builder(task)
                    builder.openArray(count: Int(count))
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
