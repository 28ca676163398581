import Foundation
import Logging
import RedisClient
import SessionService

/// sessiond: reads its configuration from flags and SESSIOND_* variables, then serves until stopped
/// (or, with --finalize-layout, finalizes the fleet's storage layout and exits).
let invocation: SessionServiceConfiguration.Invocation
do {
    invocation = try SessionServiceConfiguration.parse(
        arguments: Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment
    )
} catch {
    FileHandle.standardError.write(Data("sessiond: \(error)\n".utf8))
    exit(2)
}

func makeLogger(_ configuration: SessionServiceConfiguration) -> Logger {
    var logger = Logger(label: "sessiond")
    logger.logLevel = configuration.logLevel
    logger[metadataKey: "instance"] = "\(configuration.instance)"
    return logger
}

switch invocation {
case .help(let text):
    print(text)
case .finalizeLayout(let configuration):
    do {
        let active = try await SessionServiceApplication.finalizeLayout(configuration: configuration, logger: makeLogger(configuration))
        print("sessiond: storage layout \(active) is active")
    } catch {
        FileHandle.standardError.write(Data("sessiond: \(error)\n".utf8))
        exit(1)
    }
case .run(let configuration):
    let application = try SessionServiceApplication.build(configuration: configuration, logger: makeLogger(configuration))
    do {
        try await application.runService()
    } catch {
        FileHandle.standardError.write(Data("sessiond: \(error)\n".utf8))
        exit(1)
    }
}
