import Foundation

/// Certificates made for one test with the `openssl` command (P-256 keys, valid two days): a CA,
/// a server certificate from it for the name `redis.test` only (so that connecting to 127.0.0.1
/// verifies only when that name is asked for; cluster nodes also present it to each other, hence
/// clientAuth too), a client certificate from it,
/// and a second CA that signed none of them. Files live in a temporary folder the instance removes.
public final class TestCertificates: Sendable {
    public let directory: URL

    public var caFile: String { path("ca.crt") }
    public var otherCAFile: String { path("other-ca.crt") }
    public var serverCertificateFile: String { path("server.crt") }
    public var serverKeyFile: String { path("server.key") }
    public var clientCertificateFile: String { path("client.crt") }
    public var clientKeyFile: String { path("client.key") }

    private init(directory: URL) {
        self.directory = directory
    }

    public static func make() async throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("certificates-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        func file(_ name: String) -> String { certificates.path(name) }
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ["ca", "other-ca"] {
            try await runToCompletion(["openssl", "req", "-x509"] + key + [
                "-keyout", file("\(ca).key"), "-out", file("\(ca).crt"), "-days", "2", "-subj", "/CN=sessiond test \(ca)",
            ])
        }
        try "subjectAltName=DNS:redis.test\nextendedKeyUsage=serverAuth,clientAuth\n".write(toFile: file("server.ext"), atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\n".write(toFile: file("client.ext"), atomically: true, encoding: .utf8)
        for (name, subject) in [("server", "/CN=redis.test"), ("client", "/CN=sessiond")] {
            try await runToCompletion(["openssl", "req"] + key + ["-keyout", file("\(name).key"), "-out", file("\(name).csr"), "-subj", subject])
            try await runToCompletion([
                "openssl", "x509", "-req", "-in", file("\(name).csr"), "-CA", file("ca.crt"), "-CAkey", file("ca.key"),
                "-CAcreateserial", "-out", file("\(name).crt"), "-days", "2", "-extfile", file("\(name).ext"),
            ])
        }
        return certificates
    }

    /// `redis-server` arguments for TLS on `port` with these certificates (the plain port stays
    /// open too: the readiness probe speaks plain RESP). `clients`: whether clients must present
    /// a certificate.
    public func redisArguments(tlsPort port: Int, requireClientCertificates clients: Bool) -> [String] {
        [
            "--tls-port", String(port), "--tls-cert-file", serverCertificateFile, "--tls-key-file", serverKeyFile,
            "--tls-ca-cert-file", caFile, "--tls-auth-clients", clients ? "yes" : "no",
        ]
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }
}
