/// Redis key names. Each key carries a `{…}` hash tag so that everything one function touches lies
/// in one Redis Cluster slot: a session's key and its tombstone are tagged by its id, a user's
/// index by the user.
enum SessionKeys {
    static func session(_ id: SessionID) -> String { "sd:s:{\(id.hex)}" }
    /// What a delete or the take half of a rotation leaves behind for a while, so that repeating
    /// that write answers as its first application did (see ``SessionFunctions``).
    static func tombstone(_ id: SessionID) -> String { "sd:t:{\(id.hex)}" }
    static func userIndex(_ user: String) -> String { "sd:u:{\(user)}" }
    static let readinessProbe = "sd:readyz"
}
