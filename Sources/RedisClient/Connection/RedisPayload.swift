import NIOCore

/// What the client sends to Redis as one unit: one command, or commands that run together in a
/// `MULTI`/`EXEC` block.
///
/// A block is written in one piece, so on a pipelined connection no other caller's command can come
/// between its parts, and its result reaches the caller as if it were one command: the array of
/// the commands' replies, or the first error one of them got, thrown as that command's own error
/// (so the retry and redirect rules for a single command hold for a block too: a block refused
/// while queued never ran, like a refused command).
enum RedisPayload: Sendable {
    case command([RedisArgument])
    /// Commands on keys of one hash slot (Redis Cluster refuses any other block).
    case transaction([[RedisArgument]])

    /// The command that names the unit (its first), for routing and metrics.
    var leading: [RedisArgument] {
        switch self {
        case .command(let arguments): arguments
        case .transaction(let commands): commands.first ?? []
        }
    }

    /// The encoded unit (after `ASKING` when `afterAsking`) and how many replies it asks for.
    func encoded(into buffer: inout ByteBuffer, afterAsking: Bool = false) throws(RedisClientError) -> Int {
        guard !afterAsking else {
            try RESPCommandEncoder.encode(["ASKING"], into: &buffer)
            return try encoded(into: &buffer) + 1
        }
        switch self {
        case .command(let arguments):
            try RESPCommandEncoder.encode(arguments, into: &buffer)
            return 1
        case .transaction(let commands):
            guard !commands.isEmpty else { throw .invalidCommand("a transaction needs at least one command") }
            try RESPCommandEncoder.encode(["MULTI"], into: &buffer)
            for command in commands { try RESPCommandEncoder.encode(command, into: &buffer) }
            try RESPCommandEncoder.encode(["EXEC"], into: &buffer)
            return commands.count + 2
        }
    }

    /// The caller's result from the unit's raw reply (for a block: `MULTI`'s, each `QUEUED`,
    /// `EXEC`'s; after `ASKING`, its reply first).
    func result(of reply: RESPValue, afterAsking: Bool) throws(RedisClientError) -> RESPValue {
        guard afterAsking else { return try result(of: reply) }
        guard case .array(let replies) = reply, replies.count >= 2 else {
            throw .protocolError("Redis answered ASKING and a command with \(reply)")
        }
        if case .command = self {
            if case .error(let message) = replies[1] { throw .serverError(message) }
            return replies[1]
        }
        return try result(of: .array(Array(replies.dropFirst())))
    }

    /// The caller's result from the unit's raw reply (for a block: `MULTI`'s, each `QUEUED`, `EXEC`'s).
    func result(of reply: RESPValue) throws(RedisClientError) -> RESPValue {
        guard case .transaction(let commands) = self else { return reply }
        guard let replies = reply.array, replies.count == commands.count + 2 else {
            throw .protocolError("Redis answered a MULTI block of \(commands.count) commands with \(reply)")
        }
        // A refusal while queueing (MOVED, READONLY, OOM, NOPERM, …) aborted the block: nothing ran.
        for queued in replies.dropLast() {
            if case .error(let message) = queued { throw .serverError(message) }
        }
        switch replies[replies.count - 1] {
        case .array(let results):
            for result in results {
                if case .error(let message) = result { throw .serverError(message) }
            }
            return .array(results)
        case .error(let message):
            throw .serverError(message)
        default:
            throw .protocolError("EXEC answered \(replies[replies.count - 1]) to a block without WATCH")
        }
    }
}
