import Glibc

/// The device a session was created on, as the caller describes it (`"device"` of `POST /v1/sessions`):
/// kept apart from the session's data, shown in the session object and in every list so that a
/// user can tell their sessions apart ("Firefox on the office laptop").
///
/// Each member is optional and validated: `ip` is an IPv4 or IPv6 address in text form,
/// `user_agent` up to 512 and `label` up to 128 characters (Unicode scalars, as JSON Schema's
/// `maxLength` counts them) without control characters.
/// Stored as the JSON object sessiond writes itself (every member, `null` for one not given), so a
/// read copies it out as it is.
enum Device {
    static let maximumUserAgentCharacters = 512
    static let maximumLabelCharacters = 128
    /// The longest text form of an IPv6 address (`INET6_ADDRSTRLEN` without its terminator).
    static let maximumIPCharacters = 45

    /// The stored JSON object for the request's `device` member; `nil` for `null`, `{}` or all-null.
    static func json(from member: JSONScanner.Member) throws -> [UInt8]? {
        if member.isNull { return nil }
        guard member.isObject else { throw APIError.invalidRequest("'device' must be a JSON object") }
        let members: [JSONScanner.Member]
        do {
            members = try JSONScanner.members(of: member.raw)
        } catch {
            throw JSONBody.apiError(error)
        }
        var ip: String?
        var userAgent: String?
        var label: String?
        for member in members {
            switch member.name {
            case "ip":
                ip = try string(member, maximumCharacters: maximumIPCharacters)
                if let ip, !isIPAddress(ip) { throw APIError.invalidRequest("'device.ip' must be an IPv4 or IPv6 address") }
            case "user_agent": userAgent = try string(member, maximumCharacters: maximumUserAgentCharacters)
            case "label": label = try string(member, maximumCharacters: maximumLabelCharacters)
            default:
                // Refused whatever its value, null included.
                throw APIError.invalidRequest("unknown member 'device.\(member.name)'; expected ip, user_agent, label")
            }
        }
        guard ip != nil || userAgent != nil || label != nil else { return nil }
        var writer = JSONWriter(capacity: 64 + (userAgent?.utf8.count ?? 0) + (label?.utf8.count ?? 0))
        writer.raw("{")
        for (index, (name, value)) in [("ip", ip), ("user_agent", userAgent), ("label", label)].enumerated() {
            writer.key(name, first: index == 0)
            if let value { writer.string(value) } else { writer.raw("null") }
        }
        writer.raw("}")
        return Array(writer.buffer.readableBytesView)
    }

    /// What a session without a device shows.
    static let none: [UInt8] = Array(#"{"ip":null,"user_agent":null,"label":null}"#.utf8)

    /// The member's text; `nil` for `null` (not given).
    private static func string(_ member: JSONScanner.Member, maximumCharacters: Int) throws -> String? {
        if member.isNull { return nil }
        guard let text = JSONScanner.decodedString(member.raw) else {
            throw APIError.invalidRequest("'device.\(member.name)' must be a string")
        }
        let scalars = text.unicodeScalars
        guard (1...maximumCharacters).contains(scalars.count), !scalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw APIError.invalidRequest("'device.\(member.name)' must be 1 to \(maximumCharacters) characters without control characters")
        }
        return text
    }

    /// An IPv4 dotted quad or an IPv6 address (no zone, no brackets), as `inet_pton` reads them.
    private static func isIPAddress(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET, text, &address) == 1 || inet_pton(AF_INET6, text, &address) == 1
    }
}
