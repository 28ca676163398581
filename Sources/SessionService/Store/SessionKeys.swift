/// Redis key names. Each key carries a `{…}` hash tag so that everything one function touches lies
/// in one Redis Cluster slot: a session's key is tagged by its id, a user's index by the user.
enum SessionKeys {
    static func session(_ id: SessionID) -> String { "sd:s:{\(id.hex)}" }
    static func userIndex(_ user: String) -> String { "sd:u:{\(user)}" }
    static let readinessProbe = "sd:readyz"
}
