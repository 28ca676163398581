// libFuzzer entry point for the JSON scanner (scripts/fuzz.sh builds it with the scanner's source).
// Any input: no crash, no hang, no leak; what it accepts it hands back as members whose raw values
// the scanner accepts again, byte for byte.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONScanner(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let members = try? JSONScanner.members(of: bytes) else { return 0 }
    for member in members {
        guard let again = try? JSONScanner.validatedValue(member.raw), again == member.raw else {
            fatalError("a member's raw value is not valid JSON on its own: \(member.raw)")
        }
    }
    return 0
}
