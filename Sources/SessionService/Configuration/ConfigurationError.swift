/// A setting with a value sessiond refuses to start with; the message names the setting.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    /// The flag and environment variable, e.g. `--port / SESSIOND_PORT`.
    public let setting: String
    public let reason: String

    public init(setting: String, reason: String) {
        self.setting = setting
        self.reason = reason
    }

    public var description: String { "invalid \(setting): \(reason)" }
}
