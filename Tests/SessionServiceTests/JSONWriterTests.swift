import NIOCore
import Testing

@testable import SessionService

struct JSONWriterTests {
    private func written(_ build: (inout JSONWriter) -> Void) -> String {
        var writer = JSONWriter()
        build(&writer)
        return String(buffer: writer.buffer)
    }

    @Test func stringsAreEscapedOnlyWhereJSONRequiresIt() {
        #expect(written { $0.string("plain ✓") } == #""plain ✓""#)
        #expect(written { $0.string("q\"b\\n\nr\rt\tc\u{01}") } == #""q\"b\\n\nr\rt\tc\u0001""#)
    }

    @Test func integersKeepTheirSignAndDigits() {
        #expect(written { $0.integer(0) } == "0")
        #expect(written { $0.integer(-42) } == "-42")
        #expect(written { $0.integer(Int64.max) } == "9223372036854775807")
        #expect(written { $0.integer(Int64.min) } == "-9223372036854775808")
        #expect(written { $0.digits(7, width: 3) } == "007")
    }

    @Test func membersAreSeparatedByCommas() {
        let text = written {
            $0.raw("{")
            $0.key("a", first: true)
            $0.timestamp(milliseconds: 0)
            $0.key("b")
            $0.raw(Array("[1]".utf8))
            $0.raw("}")
        }
        #expect(text == #"{"a":"1970-01-01T00:00:00.000Z","b":[1]}"#)
    }
}
