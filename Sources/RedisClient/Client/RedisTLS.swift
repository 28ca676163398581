import NIOSSL

/// TLS to Redis (`rediss://`), to the sentinels and to cluster nodes alike: NIO owns the sockets and
/// swift-nio-ssl the TLS; hiredis only ever sees the plaintext RESP inside.
///
/// Certificates are verified against `caFile` (the system's roots when `nil`), and the server's
/// name against `serverName`, or else the host or IP address connected to. Turning verification
/// off (`verifyCertificates = false`) accepts any server: only for a test bench.
public struct RedisTLS: Sendable, Hashable {
    /// PEM file of the certificate authorities to trust; `nil`: the system's.
    public var caFile: String?
    /// PEM files of this client's certificate (chain) and private key, for servers that require
    /// one (`tls-auth-clients yes`): both or neither.
    public var certificateFile: String?
    public var keyFile: String?
    /// The name the server's certificate must carry, and the SNI sent; `nil`: the host connected to.
    public var serverName: String?
    public var verifyCertificates = true

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }

    /// Reads and checks the files now, as every connection will.
    /// - Throws: ``RedisClientError`` (`invalidURL`) saying which file cannot be used and why.
    public func validate() throws(RedisClientError) {
        _ = try makeContext()
    }

    /// The TLS context of a connection: reads and checks the files.
    func makeContext() throws(RedisClientError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = verifyCertificates ? .fullVerification : .none
        do {
            if let caFile {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            }
        } catch {
            throw RedisClientError.invalidURL("the TLS CA file \(caFile ?? "") cannot be used: \(error)")
        }
        switch (certificateFile, keyFile) {
        case (nil, nil):
            break
        case (let certificateFile?, let keyFile?):
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                throw RedisClientError.invalidURL("the TLS client certificate \(certificateFile) or key \(keyFile) cannot be used: \(error)")
            }
        default:
            throw RedisClientError.invalidURL("a TLS client certificate needs both its certificate file and its key file")
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw RedisClientError.invalidURL("the TLS settings cannot be used: \(error)")
        }
    }

    /// The name sent as SNI for a connection to `host`: none for an IP address (TLS forbids it; the
    /// certificate is then checked against the address).
    func serverName(connectingTo host: String) -> String? {
        if let serverName { return serverName }
        let isAddress = host.contains(":") || host.split(separator: ".").count == 4 && host.allSatisfy { $0 == "." || $0.isNumber }
        return isAddress ? nil : host
    }
}
