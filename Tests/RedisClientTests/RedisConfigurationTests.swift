import Testing

@testable import RedisClient

/// `redis[s]://[user:password@]host:port[/db]` parsing and its clear errors.
@Suite struct RedisConfigurationTests {
    @Test func parsesHostPortCredentialsAndDatabase() throws {
        let configuration = try RedisConfiguration(url: "redis://alice:s%40cret@redis.internal:6380/3")
        #expect(configuration.host == "redis.internal")
        #expect(configuration.port == 6380)
        #expect(configuration.username == "alice")
        #expect(configuration.password == "s@cret")
        #expect(configuration.database == 3)
    }

    @Test func passwordWithoutUserUsesTheDefaultUser() throws {
        let configuration = try RedisConfiguration(url: "redis://:secret@127.0.0.1")
        #expect(configuration.username == nil)
        #expect(configuration.password == "secret")
        #expect(configuration.port == 6379)
        #expect(configuration.database == 0)
    }

    @Test func redissMeansTLSWithVerificationAndPlainRedisMeansNone() throws {
        let tls = try RedisConfiguration(url: "rediss://alice:secret@cache.internal:6380/2")
        #expect(tls.tls == RedisTLS() && tls.tls?.verifyCertificates == true)
        #expect(tls.host == "cache.internal" && tls.port == 6380 && tls.database == 2)
        #expect(try RedisConfiguration(url: "redis://cache.internal").tls == nil)
        #expect(RedisTLS().serverName(connectingTo: "cache.internal") == "cache.internal")
        #expect(RedisTLS().serverName(connectingTo: "10.0.0.7") == nil, "no SNI for an address: the certificate is checked against it")
        #expect(RedisTLS().serverName(connectingTo: "::1") == nil)
        #expect(RedisTLS(serverName: "redis.test").serverName(connectingTo: "10.0.0.7") == "redis.test")
    }

    @Test func acceptsIPv6Literals() throws {
        let configuration = try RedisConfiguration(url: "redis://[::1]:7000")
        #expect(configuration.host == "::1")
        #expect(configuration.port == 7000)
    }

    @Test(arguments: [
        "127.0.0.1:6379", "http://127.0.0.1:6379", "redis://", "redis://:6379", "redis://host:0",
        "redis://host:70000", "redis://host:port", "redis://host/abc", "redis://host/-1",
        "redis://alice@host", "redis://host?db=1", "redis host",
    ])
    func refusesMalformedURLs(url: String) {
        #expect {
            try RedisConfiguration(url: url)
        } throws: { error in
            (error as? RedisClientError)?.code == .invalidURL
        }
    }

    @Test func errorMessagesDoNotLeakThePassword() {
        do {
            _ = try RedisConfiguration(url: "http://user:hunter2@host")
            Issue.record("an http URL must be refused")
        } catch {
            #expect(!"\(error)".contains("hunter2"))
        }
    }
}
