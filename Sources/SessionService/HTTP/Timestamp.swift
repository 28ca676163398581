/// RFC 3339 UTC timestamps with milliseconds (`2026-11-25T14:17:36.123Z`) from Unix milliseconds.
enum Timestamp {
    static func rfc3339(milliseconds: Int64) -> String {
        var writer = JSONWriter(capacity: 24)
        write(milliseconds: milliseconds, to: &writer)
        return String(buffer: writer.buffer)
    }

    /// Writes the timestamp's text (unquoted) digit by digit: no intermediate strings.
    static func write(milliseconds: Int64, to writer: inout JSONWriter) {
        let days = floorDivide(milliseconds, 86_400_000)
        let millisecondOfDay = UInt64(milliseconds - days * 86_400_000)
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        writer.digits(UInt64(clamping: year), width: 4)
        writer.raw("-")
        writer.digits(UInt64(month), width: 2)
        writer.raw("-")
        writer.digits(UInt64(day), width: 2)
        writer.raw("T")
        writer.digits(millisecondOfDay / 3_600_000, width: 2)
        writer.raw(":")
        writer.digits(millisecondOfDay / 60_000 % 60, width: 2)
        writer.raw(":")
        writer.digits(millisecondOfDay / 1000 % 60, width: 2)
        writer.raw(".")
        writer.digits(millisecondOfDay % 1000, width: 3)
        writer.raw("Z")
    }

    /// The IMF-fixdate of HTTP's `Date` header (`Wed, 25 Nov 2026 19:45:35 GMT`, RFC 9110 §5.6.7).
    static func httpDate(secondsSinceEpoch seconds: Int64) -> String {
        let days = floorDivide(seconds, 86_400)
        let secondOfDay = UInt64(seconds - days * 86_400)
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        var writer = JSONWriter(capacity: 32)
        writer.raw(weekdays[Int(((days + 4) % 7 + 7) % 7)])  // 1970-01-01 was a Thursday
        writer.raw(", ")
        writer.digits(UInt64(day), width: 2)
        writer.raw(" ")
        writer.raw(months[Int(month - 1)])
        writer.raw(" ")
        writer.digits(UInt64(clamping: year), width: 4)
        writer.raw(" ")
        writer.digits(secondOfDay / 3600, width: 2)
        writer.raw(":")
        writer.digits(secondOfDay / 60 % 60, width: 2)
        writer.raw(":")
        writer.digits(secondOfDay % 60, width: 2)
        writer.raw(" GMT")
        return String(buffer: writer.buffer)
    }

    private static let weekdays: [StaticString] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months: [StaticString] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
    private static func civilDate(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let z = daysSinceEpoch + 719_468
        let era = floorDivide(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    private static func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        value >= 0 ? value / divisor : (value - divisor + 1) / divisor
    }
}
