/// A parsed `If-Match` header: `*` or a list of strong ETags `"<version>"`.
enum IfMatch: Sendable, Equatable {
    case any
    case versions([Int64])

    /// Parses the header; `nil` when it is malformed (weak tags never match a strong comparison and
    /// are refused as a client error, as is anything that is not a version this service issued).
    init?(header: some StringProtocol) {
        let trimmed = header.trimmingWhitespace()
        if trimmed == "*" {
            self = .any
            return
        }
        var versions: [Int64] = []
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let tag = part.trimmingWhitespace()
            guard tag.count >= 3, tag.first == "\"", tag.last == "\"",
                let version = Int64(tag.dropFirst().dropLast()), version >= 1
            else { return nil }
            versions.append(version)
        }
        guard !versions.isEmpty else { return nil }
        self = .versions(versions)
    }

    /// The condition as the `session_write` function expects it.
    var functionArgument: String {
        switch self {
        case .any: "*"
        case .versions(let versions): versions.map(String.init).joined(separator: ",")
        }
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> Substring {
        let text = Substring(self)
        guard let start = text.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let end = text.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return text[start...end]
    }
}
