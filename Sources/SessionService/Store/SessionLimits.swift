/// How large a session may grow, so that one careless client cannot fill the Redis every instance
/// and every other session share.
///
/// A session's data size is the bytes of its attributes' names and raw JSON values. A create is
/// checked here (the request is the whole session); a write is checked by the write function in
/// Redis, in the same atomic call that applies it, so concurrent writes cannot pass a limit
/// together (see ``SessionFunctions``). A write that would leave a session over a limit is refused
/// unless it shrinks the session, so a session left over a lowered limit can still be emptied.
struct SessionLimits: Sendable, Equatable {
    /// The most data bytes a session may hold.
    var maxDataBytes: Int
    /// The most attributes a session may hold.
    var maxAttributes: Int
    /// The longest attribute name, in UTF-8 bytes.
    var maxNameBytes: Int

    /// Refuses a name that is empty, longer than ``maxNameBytes`` or holds a control character
    /// (U+0000–U+001F, U+007F–U+009F): names come back as JSON keys and as `/v1/auth` headers.
    func checkNames(_ attributes: [Session.Attribute]) throws(SessionStoreError) {
        for attribute in attributes {
            let bytes = attribute.name.utf8.count
            guard (1...maxNameBytes).contains(bytes) else {
                throw .invalidAttributeName("an attribute name is 1 to \(maxNameBytes) bytes, not \(bytes)")
            }
            if attribute.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                throw .invalidAttributeName("an attribute name may not hold control characters")
            }
        }
    }

    /// Refuses data that would make a new session larger than the limits allow.
    func check(newSessionData data: [Session.Attribute]) throws(SessionStoreError) {
        try checkNames(data)
        let bytes = data.reduce(0) { $0 + $1.name.utf8.count + $1.raw.count }
        if bytes > maxDataBytes || data.count > maxAttributes {
            throw tooLarge(bytes: Int64(bytes), attributes: Int64(data.count))
        }
    }

    /// The refusal of data of this size.
    func tooLarge(bytes: Int64, attributes: Int64) -> SessionStoreError {
        .sessionTooLarge(
            "the session's data would be \(bytes) bytes in \(attributes) attributes; at most \(maxDataBytes) bytes and \(maxAttributes) attributes are allowed"
        )
    }
}
