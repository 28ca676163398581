/// Redis key names, all under one prefix (``SessionServiceConfiguration/keyPrefix``, `sd:` by
/// default), so that applications sharing a Redis keep apart and an ACL can name exactly the keys
/// sessiond may touch (`~<prefix>*`). Each key carries a `{…}` hash tag so that everything one
/// function touches lies in one Redis Cluster slot: a session's key and its tombstone are tagged by
/// its id, a user's index by the user. The prefix never holds `{` or `}`, so it never becomes the tag.
struct SessionKeys: Sendable {
    let prefix: String

    /// - Precondition: `prefix` passed ``isValidPrefix(_:)``.
    init(prefix: String) {
        self.prefix = prefix
    }

    func session(_ id: SessionID) -> String { "\(prefix)s:{\(id.hex)}" }
    /// What a delete leaves behind for a while, so that repeating it answers as its first
    /// application did (see ``SessionFunctions``).
    func tombstone(_ id: SessionID) -> String { "\(prefix)t:{\(id.hex)}" }
    func userIndex(_ user: String) -> String { "\(prefix)u:{\(user)}" }
    var readinessProbe: String { "\(prefix)readyz" }

    static let maximumPrefixBytes = 64

    /// 1 to 64 printable ASCII characters, without spaces, `{` or `}`.
    static func isValidPrefix(_ prefix: String) -> Bool {
        (1...maximumPrefixBytes).contains(prefix.utf8.count)
            && prefix.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "{") && $0 != UInt8(ascii: "}") }
    }
}
