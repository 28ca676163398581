import RedisClient

/// The id of one request's writes: 8 random bytes, so that Redis can tell a repeated write from a
/// new one (see ``SessionFunctions``). Not a secret: uniqueness among a session's recent writes
/// is all it needs.
struct WriteID: Sendable {
    let argument: RedisArgument

    init() {
        var generator = SystemRandomNumberGenerator()
        let value: UInt64 = generator.next()
        argument = withUnsafeBytes(of: value) { RedisArgument(bytes: Array($0)) }
    }

    /// A write id of exactly these bytes (tests; the functions refuse any length but 8).
    init(bytes: [UInt8]) {
        argument = RedisArgument(bytes: bytes)
    }
}
