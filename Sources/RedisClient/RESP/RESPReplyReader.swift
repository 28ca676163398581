import CHiredis

/// Incremental RESP2 reply parser over hiredis' `redisReader`.
///
/// Feed it bytes as they arrive, in pieces of any size, then call ``next()`` until it returns
/// `nil`: each call yields one complete reply, copied into a ``RESPValue`` (the hiredis reply tree
/// is freed at once). A protocol error is sticky in hiredis: after one, the reader stays broken and
/// the owner must drop the connection.
///
/// Not thread-safe; owned by one channel handler on its event loop.
final class RESPReplyReader {
    private let reader: UnsafeMutablePointer<redisReader>

    init() {
        guard let reader = redisReaderCreate() else {
            // hiredis only fails here when malloc does; there is nothing sensible to continue with.
            fatalError("hiredis could not allocate a reply reader")
        }
        self.reader = reader
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
            throw .protocolError(currentError())
        }
        guard let raw else { return nil }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return Self.copy(reply)
    }

    private func currentError() -> String {
        String(cString: chiredis_reader_error(reader))
    }

    /// Copies a hiredis reply tree into Swift values.
    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let node = reply.pointee
        switch node.type {
        case REDIS_REPLY_STRING:
            return .bulkString(bytes(node.str, node.len))
        case REDIS_REPLY_STATUS:
            return .simpleString(String(decoding: bytes(node.str, node.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(node.str, node.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(node.integer))
        case REDIS_REPLY_ARRAY:
            var elements: [RESPValue] = []
            elements.reserveCapacity(node.elements)
            for index in 0..<node.elements {
                if let child = node.element[index] {
                    elements.append(copy(child))
                } else {
                    elements.append(.null)
                }
            }
            return .array(elements)
        default:  // REDIS_REPLY_NIL (RESP2 has no other types)
            return .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}
