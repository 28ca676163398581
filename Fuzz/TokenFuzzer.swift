// libFuzzer entry point for the header parsers on every session request: the session token
// (`X-Session-Token`, cookies) and `If-Match`. Any input: no crash, no hang, no leak; a token that
// parses prints back as the same text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHeaders(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let token = SessionToken(parsing: text), token.text != text {
        fatalError("a token parsed from '\(text)' prints as '\(token.text)'")
    }
    _ = SessionID(parsing: text)
    _ = IfMatch(header: text)
    return 0
}
