import Hummingbird

/// Reads a request body that must be a JSON object, enforcing the size limit, the media type, and
/// strict JSON (see ``JSONScanner``).
struct JSONBody {
    let limit: Int

    /// The members of the body's top-level object.
    /// - Parameter allowEmpty: an absent or empty body means `{}` (every member optional).
    /// - Throws: ``APIError``: `payload_too_large`, `unsupported_media_type`, `invalid_json`, `invalid_request`.
    func members(of request: Request, allowEmpty: Bool = false) async throws -> [JSONScanner.Member] {
        // Refused by the headers alone, before reading: a declared length over the limit, or a
        // media type other than JSON.
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.payloadTooLarge(limit: limit)
        }
        if let contentType = request.headers[.contentType], !Self.isJSON(contentType) {
            throw APIError.unsupportedMediaType
        }
        // The transport keeps at most one byte past the limit, whatever the framing (a chunked body
        // declares no length): one byte more than the limit is the body that is too large.
        var request = request
        let buffer = try await request.collectBody(upTo: limit + 1)
        guard buffer.readableBytes <= limit else { throw APIError.payloadTooLarge(limit: limit) }
        if buffer.readableBytes == 0 {
            if allowEmpty { return [] }
            throw APIError.invalidJSON("the request body is empty; a JSON object is required")
        }
        guard request.headers[.contentType] != nil else { throw APIError.unsupportedMediaType }
        do {
            return try JSONScanner.members(of: Array(buffer.readableBytesView))
        } catch {
            throw Self.apiError(error)
        }
    }

    static func apiError(_ failure: JSONScanner.Failure) -> APIError {
        switch failure {
        case .invalid(let reason): .invalidJSON("the body is not valid JSON: \(reason)")
        case .tooDeep: .invalidJSON("JSON nested deeper than \(JSONScanner.maximumDepth) levels is not accepted")
        case .notAnObject: .invalidRequest("the body must be a JSON object")
        case .duplicateMember(let name): .invalidRequest("the member '\(name)' appears more than once")
        }
    }

    /// `application/json`, any case, with or without parameters such as `charset=utf-8`.
    static func isJSON(_ contentType: String) -> Bool {
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingWhitespace().lowercased() }
        return mediaType == "application/json"
    }
}
