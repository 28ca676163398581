import Foundation
import Logging
import RedisClient
import SessionService

/// sessiond: reads its configuration from flags and SESSIOND_* variables, then serves until stopped.
let invocation: SessionServiceConfiguration.Invocation
do {
    invocation = try SessionServiceConfiguration.parse(
        arguments: Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment
    )
} catch {
    FileHandle.standardError.write(Data("sessiond: \(error)\n".utf8))
    exit(2)
}

switch invocation {
case .help(let text):
    print(text)
case .run(let configuration):
    let logger = {
        var logger = Logger(label: "sessiond")
        logger.logLevel = configuration.logLevel
        logger[metadataKey: "instance"] = "\(configuration.instance)"
        return logger
    }()
    let application = try SessionServiceApplication.build(configuration: configuration, logger: logger)
    try await application.runService()
}
