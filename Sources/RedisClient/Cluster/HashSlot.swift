/// Redis Cluster's key → slot function: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384.
///
/// The hash tag is the part between the first `{` and the next `}` after it, when that part is not
/// empty: `sd:s:{abc}` and `sd:u:{abc}` share a slot, `{}x` hashes whole (cluster spec, "Hash tags").
public enum HashSlot {
    /// The number of slots in a Redis Cluster.
    public static let count = 16384

    /// The slot of `key`.
    public static func of(_ key: some Collection<UInt8>) -> Int {
        Int(crc16(hashedPart(of: key)) % UInt16(count))
    }

    /// The slot of a command's key: `FCALL`'s first key, else the first argument, unless the
    /// command has no key (then `nil`: any primary will do).
    static func of(command arguments: [RedisArgument]) -> Int? {
        guard let command = arguments.first else { return nil }
        // Read in place: `bytes` copies an argument held inline, and this runs for every command.
        let name = command.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }.uppercased()
        if name == "FCALL" || name == "FCALL_RO" || name == "EVAL" || name == "EVALSHA" {
            guard arguments.count > 3, let count = arguments[2].withUnsafeBytes({ Int(String(decoding: $0, as: UTF8.self)) }), count > 0 else {
                return nil
            }
            return arguments[3].withUnsafeBytes { of($0) }
        }
        if keylessCommands.contains(name) || arguments.count < 2 { return nil }
        return arguments[1].withUnsafeBytes { of($0) }
    }

    private static let keylessCommands: Set<String> = [
        "PING", "ECHO", "ROLE", "INFO", "WAIT", "FUNCTION", "CLUSTER", "CLIENT", "CONFIG", "DBSIZE", "TIME",
        "SCAN", "FLUSHALL", "FLUSHDB", "AUTH", "SELECT", "HELLO", "COMMAND", "MEMORY", "SLOWLOG", "LATENCY",
    ]

    /// The bytes that are hashed: the hash tag when there is a non-empty one, else the whole key.
    static func hashedPart<Key: Collection<UInt8>>(of key: Key) -> Key.SubSequence {
        if let open = key.firstIndex(of: UInt8(ascii: "{")) {
            let afterOpen = key.index(after: open)
            if let close = key[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close != afterOpen {
                return key[afterOpen..<close]
            }
        }
        return key[...]
    }

    /// CRC16/XMODEM: polynomial 0x1021, initial value 0, no reflection ("123456789" → 0x31C3).
    static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
