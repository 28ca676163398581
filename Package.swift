// swift-tools-version:6.1
import PackageDescription

/// Every Swift target builds in the Swift 6 language mode with `any` spelled out for existentials.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "sessiond",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sessiond", targets: ["sessiond"]),
        .library(name: "RedisClient", targets: ["RedisClient"]),
        .library(name: "SessionService", targets: ["SessionService"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        // Without its default traits: sessiond uses neither swift-configuration (ConfigurationSupport)
        // nor Foundation's URL-encoded forms (FullFoundation). With two traits on, SwiftPM orders
        // their -D flags differently from one build plan to the next, and every re-plan (any change
        // of the environment) recompiled Hummingbird and HummingbirdCore in release builds.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // Debian's libhiredis-dev, used for the RESP protocol only (formatting and the reply reader).
        // No pkgConfig: hiredis.pc adds a flag SwiftPM rejects, and the headers sit on the default path.
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis"),
        // Debian's libssl-dev (libcrypto only): CSPRNG bytes, SHA-256, constant-time comparison.
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        .target(
            name: "RedisClient",
            dependencies: [
                "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SessionService",
            dependencies: [
                "RedisClient",
                "COpenSSL",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.copy("Resources/openapi.yaml")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sessiond",
            dependencies: [
                "SessionService",
                "RedisClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "RedisClientBenchmark",
            dependencies: ["RedisClient"],
            path: "Benchmarks/RedisClientBenchmark",
            swiftSettings: swiftSettings
        ),
        // Starts and stops real redis-server processes for the test targets.
        .target(
            name: "RedisTestSupport",
            dependencies: [
                "RedisClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tests/RedisTestSupport",
            // delay-proxy.py is run from its source path, not bundled.
            exclude: ["Resources"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RedisClientTests",
            dependencies: [
                "RedisClient", "RedisTestSupport", "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SessionServiceTests",
            dependencies: [
                "SessionService", "RedisClient", "RedisTestSupport", "COpenSSL",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

// The HTTP request path under libFuzzer (scripts/fuzz.sh): built only when SESSIOND_FUZZ=1, with
// `--sanitize=fuzzer` in a scratch path of its own, because libFuzzer brings the program's main().
if Context.environment["SESSIOND_FUZZ"] == "1" {
    package.targets.append(
        .executableTarget(
            name: "HTTPFuzzer",
            dependencies: [
                "SessionService",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Fuzz/HTTP",
            swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]
        )
    )
}
