import CHiredis
import NIOCore

/// Encodes a command's arguments as a RESP multi-bulk request with hiredis' `redisFormatCommandArgv`.
///
/// Every argument is passed with its length, so the encoding is binary-safe. The buffer hiredis
/// allocates is copied into the caller's `ByteBuffer` and freed before returning.
enum RESPCommandEncoder {
    /// Appends the RESP encoding of `arguments` to `buffer`.
    /// - Throws: ``RedisClientError`` `.invalidCommand` for an empty command, or when hiredis cannot allocate.
    static func encode(_ arguments: [RedisArgument], into buffer: inout ByteBuffer) throws(RedisClientError) {
        guard !arguments.isEmpty else {
            throw .invalidCommand("a command needs at least one argument")
        }
        guard arguments.count <= Int(Int32.max) else {
            throw .invalidCommand("too many arguments")
        }
        var formatted: UnsafeMutablePointer<CChar>? = nil
        let length = withArgumentPointers(arguments) { pointers, lengths in
            redisFormatCommandArgv(&formatted, Int32(arguments.count), pointers, lengths)
        }
        guard length >= 0, let formatted else {
            throw .invalidCommand("hiredis could not format the command")
        }
        defer { redisFreeCommand(formatted) }
        buffer.writeBytes(UnsafeRawBufferPointer(start: formatted, count: Int(length)))
    }

    /// Calls `body` with C arrays of argument pointers and lengths, valid only during the call.
    private static func withArgumentPointers<Result>(
        _ arguments: [RedisArgument],
        _ body: (UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> Result
    ) -> Result {
        // One contiguous copy of all arguments keeps every pointer valid for the whole call
        // (pointers into separate Swift arrays would each be valid only inside their own closure).
        let total = arguments.reduce(0) { $0 + $1.count }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(total, 1)) { storage in
            withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: arguments.count) { pointers in
                withUnsafeTemporaryAllocation(of: Int.self, capacity: arguments.count) { lengths in
                    let base = storage.baseAddress!
                    var offset = 0
                    for (index, argument) in arguments.enumerated() {
                        let start = base + offset
                        let count = argument.withUnsafeBytes { source in
                            if let address = source.baseAddress {
                                UnsafeMutableRawPointer(start).copyMemory(from: address, byteCount: source.count)
                            }
                            return source.count
                        }
                        pointers[index] = UnsafeRawPointer(start).assumingMemoryBound(to: CChar.self)
                        lengths[index] = count
                        offset += count
                    }
                    return body(pointers.baseAddress!, lengths.baseAddress!)
                }
            }
        }
    }
}
