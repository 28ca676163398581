/// Redis key names, all under one prefix (``SessionServiceConfiguration/keyPrefix``, `sd:` by
/// default), so that applications sharing a Redis keep apart and an ACL can name exactly the keys
/// sessiond may touch (`~<prefix>*`). Each key carries a `{…}` hash tag so that everything one
/// function touches lies in one Redis Cluster slot. In layout 1 (``SessionLayout``) a session's
/// key and its tombstone are tagged by its id; in layout 2 by its bucket, which its bucket's
/// deadline index (and, with events, its bucket's event stream) shares. A user's index is tagged by
/// the user in both. The prefix never holds `{` or `}`, so it never becomes the tag.
struct SessionKeys: Sendable {
    let prefix: String
    /// Where a change's event is appended: on a Redis Cluster its bucket's own outbox (the
    /// change's hash slot), relayed into the event log; on one server the event log itself.
    let outboxPerBucket: Bool

    /// - Precondition: `prefix` passed ``isValidPrefix(_:)``.
    init(prefix: String, outboxPerBucket: Bool = false) {
        self.prefix = prefix
        self.outboxPerBucket = outboxPerBucket
    }

    /// How many buckets layout 2 spreads sessions over. Fixed for the layout's life: a session's
    /// bucket is part of its key's name.
    static let bucketCount = 1024

    /// Layout 2's bucket of a session: the low 10 bits of its id's first two bytes (the id is
    /// random, so the buckets fill evenly).
    static func bucket(of id: SessionID) -> Int {
        id.hex.utf8.prefix(4).reduce(0) { $0 << 4 | Int(Hex.value($1)) } % bucketCount
    }

    /// A session's hash.
    func session(_ id: SessionID, in layout: SessionLayout) -> String {
        layout.isBucketed ? sessionPrefix(bucket: Self.bucket(of: id)) + id.hex : "\(prefix)s:{\(id.hex)}"
    }

    /// What a delete leaves behind for a while, so that repeating it answers as its first
    /// application did (see ``SessionFunctions``).
    func tombstone(_ id: SessionID, in layout: SessionLayout) -> String {
        layout.isBucketed ? "\(prefix){b\(Self.bucket(of: id))}:t:\(id.hex)" : "\(prefix)t:{\(id.hex)}"
    }

    /// The deadline index of the session's bucket: raw session ids scored by deadline (seconds,
    /// rounded up). `nil` in layout 1, which has none.
    func deadlines(_ id: SessionID, in layout: SessionLayout) -> String? {
        layout.isBucketed ? deadlines(bucket: Self.bucket(of: id)) : nil
    }

    func deadlines(bucket: Int) -> String { "\(prefix){b\(bucket)}:d" }
    /// What a bucket's session keys start with (the sweeper adds the id).
    func sessionPrefix(bucket: Int) -> String { "\(prefix){b\(bucket)}:s:" }

    /// The stream consumers read (``SessionEvents``): one, in its own slot.
    var eventLog: String { "\(prefix){e}:log" }
    /// Where the events of changes in `bucket` are appended (see ``outboxPerBucket``).
    func outbox(bucket: Int) -> String { outboxPerBucket ? "\(prefix){b\(bucket)}:o" : eventLog }
    /// The lease on one part of the buckets for the sweeper (``EventSweeper``); all in the event
    /// log's slot, so that one call renews them all.
    func sweepLease(part: Int) -> String { "\(prefix){e}:lease:\(part)" }

    /// A user's index (the same in both layouts: session ids, in the user's own slot).
    func userIndex(_ user: String) -> String { "\(prefix)u:{\(user)}" }
    var readinessProbe: String { "\(prefix)readyz" }
    /// The fleet's announcements and active layout (see ``FleetLayout``).
    var fleet: String { "\(prefix)fleet" }

    static let maximumPrefixBytes = 64

    /// 1 to 64 printable ASCII characters, without spaces, `{` or `}`.
    static func isValidPrefix(_ prefix: String) -> Bool {
        (1...maximumPrefixBytes).contains(prefix.utf8.count)
            && prefix.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "{") && $0 != UInt8(ascii: "}") }
    }
}
