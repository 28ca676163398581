import Foundation

/// One configurable setting, declared once: its name (which makes its flag and its environment
/// variable), the property it sets, the type of its value with its unit, validation and
/// default, and its help. The parser, `--help`, README's table (``SessionServiceConfiguration/markdownTable``)
/// and the configuration the application reads all come from ``SessionServiceConfiguration/settings``.
public struct Setting: Sendable {
    /// `idle-timeout`: the flag is `--idle-timeout`, the variable `SESSIOND_IDLE_TIMEOUT`.
    public let name: String
    public let help: String
    /// The default as `--help` and README show it.
    public let defaultDescription: String
    /// Whether the default is a value one could type (`1800`), rather than words (`none`).
    public let defaultIsValue: Bool
    /// A flag that may stand alone, meaning `true` (`--allow-unauthenticated`).
    let isSwitch: Bool
    private let assign: @Sendable (inout SessionServiceConfiguration, String) throws(ConfigurationError) -> Void

    public var flag: String { "--\(name)" }
    public var environmentVariable: String { "SESSIOND_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }
    /// How errors name the setting: `--idle-timeout / SESSIOND_IDLE_TIMEOUT`.
    var label: String { "\(flag) / \(environmentVariable)" }

    /// - Parameter defaultDescription: for a default that is not a value (`the host name`);
    ///   otherwise the default configuration's value, described by `value`.
    init<Value>(
        _ name: String, _ property: any WritableKeyPath<SessionServiceConfiguration, Value> & Sendable, _ value: SettingValue<Value>,
        help: String, defaultDescription: String? = nil
    ) {
        self.name = name
        self.help = help
        let described = value.describe(SessionServiceConfiguration()[keyPath: property])
        self.defaultDescription = defaultDescription ?? described ?? value.absent
        self.defaultIsValue = defaultDescription == nil && described != nil
        self.isSwitch = value.isSwitch
        let label = "--\(name) / SESSIOND_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
        self.assign = { configuration, text throws(ConfigurationError) in
            do throws(SettingValueError) {
                configuration[keyPath: property] = try value.parse(text)
            } catch {
                throw ConfigurationError(setting: label, reason: error.reason)
            }
        }
    }

    /// Sets the property from `text`, or says what is wrong with it.
    func apply(_ text: String, to configuration: inout SessionServiceConfiguration) throws(ConfigurationError) {
        try assign(&configuration, text)
    }
}

/// Why a setting's text is not a value of it (the setting is named by whoever catches it).
struct SettingValueError: Error {
    let reason: String
}

/// How a setting's text becomes its value, and how its value is shown as a default.
struct SettingValue<Value>: Sendable {
    let parse: @Sendable (String) throws(SettingValueError) -> Value
    /// The value as one would type it; `nil` for no value (then ``absent`` describes it).
    let describe: @Sendable (Value) -> String?
    var absent = "none"
    var isSwitch = false
}

extension SettingValue where Value == Int {
    /// A whole number within `range`.
    static func integer(_ range: ClosedRange<Int>) -> Self {
        Self(parse: { text throws(SettingValueError) in try wholeNumber(text, in: range) }, describe: { String($0) })
    }
}

extension SettingValue where Value == Duration {
    /// Whole seconds within `range`.
    static func seconds(_ range: ClosedRange<Int>) -> Self {
        Self(
            parse: { text throws(SettingValueError) in .seconds(try wholeNumber(text, in: range)) },
            describe: { String($0.components.seconds) }
        )
    }

    /// Whole milliseconds within `range`.
    static func milliseconds(_ range: ClosedRange<Int>) -> Self {
        Self(
            parse: { text throws(SettingValueError) in .milliseconds(try wholeNumber(text, in: range)) },
            describe: { String($0.milliseconds) }
        )
    }
}

extension SettingValue where Value == Bool {
    /// `true`/`1`/`yes` or `false`/`0`/`no`; the flag alone means `true`.
    static var boolean: Self {
        Self(
            parse: { text throws(SettingValueError) in
                switch text.lowercased() {
                case "true", "1", "yes": return true
                case "false", "0", "no": return false
                default: throw SettingValueError(reason: "'\(text)' is not true or false")
                }
            },
            describe: { String($0) }, isSwitch: true
        )
    }
}

extension SettingValue where Value: RawRepresentable & CaseIterable & Sendable, Value.RawValue == String {
    /// One of the type's cases, by name, in any letter case.
    static var choice: Self {
        Self(
            parse: { text throws(SettingValueError) in
                guard let value = Value(rawValue: text.lowercased()) else {
                    let names = Value.allCases.map(\.rawValue)
                    throw SettingValueError(reason: "'\(text)' is not \(names.dropLast().joined(separator: ", ")) or \(names.last ?? "")")
                }
                return value
            },
            describe: { $0.rawValue }
        )
    }
}

extension SettingValue {
    /// Text that `make` turns into the value, or says why it cannot.
    static func text(_ make: @escaping @Sendable (String) throws(SettingValueError) -> Value, describe: @escaping @Sendable (Value) -> String?) -> Self {
        Self(parse: make, describe: describe)
    }

    /// The same value, optional: no value by default, described as `absent`.
    static func optional<Wrapped>(_ value: SettingValue<Wrapped>, absent: String = "none") -> Self where Value == Wrapped? {
        Self(parse: { text throws(SettingValueError) in try value.parse(text) }, describe: { $0.flatMap(value.describe) }, absent: absent)
    }
}

extension SettingValue where Value == String {
    /// Text that `problem` finds nothing wrong with (it returns the reason otherwise).
    static func text(_ problem: @escaping @Sendable (String) -> String?) -> Self {
        Self(
            parse: { text throws(SettingValueError) in
                if let reason = problem(text) { throw SettingValueError(reason: reason) }
                return text
            },
            describe: { $0 }
        )
    }
}

extension SettingValue where Value == [String] {
    /// Comma-separated items, trimmed, empty ones dropped; `problem` judges the list and each item.
    static func list(_ problem: @escaping @Sendable ([String]) -> String?) -> Self {
        Self(
            parse: { text throws(SettingValueError) in
                let items = text.split(separator: ",").map { String($0.trimmingWhitespace()) }.filter { !$0.isEmpty }
                if let reason = problem(items) { throw SettingValueError(reason: reason) }
                return items
            },
            describe: { $0.isEmpty ? nil : $0.joined(separator: ",") }
        )
    }
}

private func wholeNumber(_ text: String, in range: ClosedRange<Int>) throws(SettingValueError) -> Int {
    guard let number = Int(text.trimmingWhitespace()), range.contains(number) else {
        throw SettingValueError(reason: "'\(text)' is not a whole number from \(range.lowerBound) to \(range.upperBound)")
    }
    return number
}
