import Foundation
import RedisTestSupport
import Testing

import RedisClient

/// The client against real `redis-server` processes started by each test.
@Suite struct RedisClientTests {
    /// A client for `server` with test-sized deadlines and backoff.
    static func client(
        for server: RedisServer,
        connections: Int? = nil,
        commandTimeout: Duration = .seconds(5),
        functions: [RedisFunctionLibrary] = [],
        url: String? = nil
    ) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: url ?? server.url)
        configuration.connectionCount = connections
        configuration.commandTimeout = commandTimeout
        // Generous: the suite's other tests load both cores, and no test here times a connect.
        configuration.connectTimeout = .seconds(5)
        configuration.reconnectBackoffMaximum = .milliseconds(200)
        return RedisClient.running(configuration: configuration, functionLibraries: functions)
    }

    /// The value of one `INFO` field, e.g. `connected_clients`.
    static func info(_ client: RedisClient, _ field: String) async throws -> Int? {
        let text = try await client.send("INFO").string ?? ""
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("\(field):") {
            return Int(line.dropFirst(field.count + 1))
        }
        return nil
    }

    /// Bytes waiting unread in the query buffer of the one blocked client (`flags=b`), if there is one.
    static func blockedClientQueryBuffer(_ client: RedisClient) async throws -> Int? {
        let text = try await client.send("CLIENT", "LIST").string ?? ""
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: " ")
            guard fields.contains("flags=b") else { continue }
            return fields.first { $0.hasPrefix("qbuf=") }.flatMap { Int($0.dropFirst("qbuf=".count)) }
        }
        return nil
    }

    @Test func tenThousandConcurrentCommandsOnOneConnectionEachGetTheirOwnReply() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server, connections: 1)
        let mismatches = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<10_000 {
                group.addTask {
                    let reply = try await client.send("ECHO", RedisArgument("reply-\(index)"))
                    return reply.string == "reply-\(index)"
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 0 : 1) }
        }
        #expect(mismatches == 0)
        // All of it went over the one connection the client was allowed (eventually: under heavy load
        // Redis may not yet have noticed a connect attempt the client gave up on).
        let oneClient = await eventually { try await Self.info(client, "connected_clients") == 1 }
        let clients = oneClient ? "" : (try? await client.send("CLIENT", "LIST").string) ?? ""
        #expect(oneClient, "\(clients)")
        await client.shutdown()
    }

    @Test func binaryValuesSurviveTheRoundTrip() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server)
        let binary: [UInt8] = [0, 13, 10, 0, 255, 36, 42, 13, 10]
        let key = RedisArgument(bytes: [107, 0, 13, 10])  // "k\0\r\n": keys are binary-safe too
        #expect(try await client.send("SET", key, RedisArgument(bytes: binary)) == .simpleString("OK"))
        #expect(try await client.send("GET", key) == .bulkString(binary))
        #expect(try await client.send("GET", "missing") == .null)
        await client.shutdown()
    }

    @Test func oneMebibyteValueRoundTrips() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server)
        var generator = SystemRandomNumberGenerator()
        let value = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        _ = try await client.send("SET", "big", RedisArgument(bytes: value))
        #expect(try await client.send("STRLEN", "big") == .integer(1 << 20))
        #expect(try await client.send("GET", "big").bytes == value)
        await client.shutdown()
    }

    @Test func decodesNestedArraysIntegersAndNilFromTheServer() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server)
        _ = try await client.send("RPUSH", "list", "a", "b")
        let reply = try await client.send(
            "EVAL", "return {1, {'x', {false}}, redis.call('LRANGE', KEYS[1], 0, -1)}", "1", "list"
        )
        #expect(reply == .array([.integer(1), .array([.bulkString([0x78]), .array([.null])]), .array([.bulkString([0x61]), .bulkString([0x62])])]))
        await client.shutdown()
    }

    @Test func anErrorReplyFailsOnlyItsOwnCommand() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server, connections: 1)
        _ = try await client.send("SET", "string", "x")
        async let before = client.send("ECHO", "before")
        async let wrong = Result { try await client.send("LPUSH", "string", "y") }
        async let after = client.send("ECHO", "after")
        #expect(try await before == .bulkString(Array("before".utf8)))
        #expect(try await after == .bulkString(Array("after".utf8)))
        let error = try #require(await wrong.failure as? RedisClientError)
        #expect(error.code == .serverError)
        #expect(error.serverErrorPrefix == "WRONGTYPE")
        #expect(try await client.send("PING") == .simpleString("PONG"))
        await client.shutdown()
    }

    @Test func aKilledServerFailsEveryCommandInFlightByTheCloseNotByItsDeadline() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server, connections: 1, commandTimeout: .seconds(30))
        let observer = try Self.client(for: server, connections: 1)
        _ = try await client.send("PING")
        let outcome = Task {
            try await withThrowingTaskGroup(of: (RedisClientError.Code?, ContinuousClock.Instant).self) { group in
                // The BLPOP blocks; the ECHOs queue behind it on the same connection.
                group.addTask { await Self.failureCode { try await client.send("BLPOP", "never", "0") } }
                for index in 0..<200 {
                    group.addTask { await Self.failureCode { try await client.send("ECHO", RedisArgument(index)) } }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        // In flight means in Redis: wait until every ECHO sits unread behind the BLPOP in the blocked
        // client's query buffer; one the client had not yet written when the server died would
        // rightly fail with connection_failed instead.
        let echoBytes = (0..<200).reduce(0) { total, index in
            total + "*2\r\n$4\r\nECHO\r\n$\(String(index).utf8.count)\r\n\(index)\r\n".utf8.count
        }
        #expect(await eventually { try await Self.blockedClientQueryBuffer(observer) == echoBytes })
        let killedAt = ContinuousClock.now
        await server.kill()
        let results = try await outcome.value
        #expect(results.count == 201)
        #expect(results.allSatisfy { $0.0 == .connectionClosed }, "every in-flight command fails with connection_closed")
        // Failed by the closed connection, not left to their deadline (30 s here): how much sooner
        // depends on how busy the machine is, so that is all this judges.
        let slowest = results.map { $0.1 - killedAt }.max()!
        #expect(slowest < .seconds(5), "the last in-flight command failed \(slowest) after the kill")
        await client.shutdown()
        await observer.shutdown()
    }

    @Test func commandsSentWhileTheConnectionClosesAllComplete() async throws {
        // Commands racing a closing connection: one written after the channel closed never reaches
        // the handler, and used to wait forever. Every one must finish, with a reply or an error.
        let server = try await RedisServer.start()
        let client = try Self.client(for: server, connections: 1)
        _ = try await client.send("PING")
        let finished = await withTaskGroup(of: Bool.self) { group -> Bool in
            group.addTask {
                await withTaskGroup(of: Void.self) { senders in
                    for round in 0..<20 {
                        for _ in 0..<200 {
                            senders.addTask { _ = try? await client.send("PING") }
                        }
                        if round == 5 { await server.kill() }
                        await Task.yield()
                    }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))  // the deadline of this test, not a wait for a condition
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        #expect(finished, "some commands never completed after the connection closed")
        await client.shutdown()
    }

    @Test func theSameClientWorksAgainAfterTheServerRestarts() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server)
        _ = try await client.send("SET", "k", "before")
        await server.kill()
        let whileDown = try #require(await Result { try await client.send("GET", "k") }.failure as? RedisClientError)
        #expect([.connectionClosed, .connectionFailed].contains(whileDown.code))
        let restarted = try await server.restart()
        #expect(await eventually { try await client.send("SET", "k", "after") == .simpleString("OK") })
        // Once any connection is back, no command fails because another connection is still backing off.
        for _ in 0..<20 {
            #expect(try await client.send("GET", "k").string == "after")
        }
        await client.shutdown()
        await restarted.stop()
    }

    @Test func aServerThatNeverAnswersGivesATimeoutError() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server, connections: 1, commandTimeout: .milliseconds(300))
        // Connected and answering first (a loaded machine can take longer than 300 ms to connect).
        #expect(await eventually { try await client.send("PING") == .simpleString("PONG") })
        server.pause()  // still accepts at the TCP level, answers nothing
        let started = ContinuousClock.now
        let error = try #require(await Result { try await client.send("PING") }.failure as? RedisClientError)
        let waited = ContinuousClock.now - started
        #expect(error.code == .timeout)
        #expect(waited >= .milliseconds(300) && waited < .seconds(2), "timed out after \(waited)")
        server.resume()
        #expect(await eventually { try await client.send("PING") == .simpleString("PONG") })
        await client.shutdown()
    }

    @Test func aWrongPasswordIsAnAuthenticationError() async throws {
        let server = try await RedisServer.start(arguments: ["--requirepass", "right"])
        let wrong = try Self.client(for: server, url: "redis://:wrong@127.0.0.1:\(server.port)")
        let error = try #require(await Result { try await wrong.send("PING") }.failure as? RedisClientError)
        #expect(error.code == .authenticationFailed)
        #expect(!error.message.contains("wrong"), "the password must not appear in the error")
        let missing = try Self.client(for: server)
        let noAuth = try #require(await Result { try await missing.send("GET", "k") }.failure as? RedisClientError)
        #expect(noAuth.serverErrorPrefix == "NOAUTH")
        let right = try Self.client(for: server, url: "redis://:right@127.0.0.1:\(server.port)")
        #expect(try await right.send("PING") == .simpleString("PONG"))
        await wrong.shutdown()
        await missing.shutdown()
        await right.shutdown()
    }

    @Test func authenticatesAsAnACLUser() async throws {
        let server = try await RedisServer.start()
        let admin = try Self.client(for: server)
        _ = try await admin.send("ACL", "SETUSER", "alice", "on", ">p@ss", "~app:*", "+@all")
        let alice = try Self.client(for: server, url: "redis://alice:p%40ss@127.0.0.1:\(server.port)")
        #expect(try await alice.send("SET", "app:1", "x") == .simpleString("OK"))
        // The ACL applies: alice may not touch keys outside app:*.
        let denied = try #require(await Result { try await alice.send("SET", "other", "x") }.failure as? RedisClientError)
        #expect(denied.serverErrorPrefix == "NOPERM")
        let impostor = try Self.client(for: server, url: "redis://alice:nope@127.0.0.1:\(server.port)")
        #expect((await Result { try await impostor.send("PING") }.failure as? RedisClientError)?.code == .authenticationFailed)
        await admin.shutdown()
        await alice.shutdown()
        await impostor.shutdown()
    }

    @Test func selectsTheDatabaseOfTheURL() async throws {
        let server = try await RedisServer.start()
        let database2 = try Self.client(for: server, url: "\(server.url)/2")
        let database0 = try Self.client(for: server)
        _ = try await database2.send("SET", "where", "two")
        #expect(try await database0.send("GET", "where") == .null)
        #expect(try await database0.send("SELECT", "2") == .simpleString("OK"))
        await database2.shutdown()
        await database0.shutdown()
    }

    @Test func aRefusedConnectionIsAConnectionErrorNotAHang() async throws {
        let port = try freeLoopbackPort()
        var configuration = RedisConfiguration(host: "127.0.0.1", port: port)
        // Far longer than any refusal takes, however busy the machine: failing before it means the
        // refusal was answered, not waited out.
        configuration.connectTimeout = .seconds(30)
        let client = RedisClient.running(configuration: configuration)
        let started = ContinuousClock.now
        let error = try #require(await Result { try await client.send("PING") }.failure as? RedisClientError)
        #expect(error.code == .connectionFailed)
        #expect(error.message.contains("refused"), "\(error)")
        #expect(ContinuousClock.now - started < .seconds(30))
        // During backoff the next caller fails at once with the same error rather than waiting.
        let again = try #require(await Result { try await client.send("PING") }.failure as? RedisClientError)
        #expect(again.code == .connectionFailed)
        await client.shutdown()
    }

    @Test func aCancelledCallerDoesNotShiftRepliesOntoOthers() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server, connections: 1, commandTimeout: .seconds(10))
        let helper = try Self.client(for: server, connections: 1)
        let blocked = Task { try await client.send("BLPOP", "queue", "0") }
        #expect(await eventually { try await Self.info(helper, "blocked_clients") == 1 })
        async let behind = client.send("ECHO", "behind")  // queued after the BLPOP on the same connection
        blocked.cancel()
        #expect(await blocked.result.failure is CancellationError)
        _ = try await helper.send("RPUSH", "queue", "for-the-cancelled-caller")
        #expect(try await behind == .bulkString(Array("behind".utf8)))
        #expect(try await client.send("ECHO", "next") == .bulkString(Array("next".utf8)))
        await client.shutdown()
        await helper.shutdown()
    }

    static let library = RedisFunctionLibrary(source: """
        #!lua name=testlib
        redis.register_function('incr_by_two', function(keys, args)
            return redis.call('INCRBY', keys[1], 2)
        end)
        redis.register_function('fail', function(keys, args)
            return redis.error_reply('CUSTOM failed on purpose')
        end)
        """)

    @Test func functionsAreLoadedAtConnectAndReloadedAfterAFlush() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server, functions: [Self.library])
        let admin = try Self.client(for: server)
        #expect(try await client.fcall("incr_by_two", keys: ["counter"]) == .integer(2))
        _ = try await admin.send("FUNCTION", "FLUSH")
        #expect(try await client.fcall("incr_by_two", keys: ["counter"]) == .integer(4))
        let error = try #require(await Result { try await client.fcall("fail") }.failure as? RedisClientError)
        #expect(error.code == .serverError && error.serverErrorPrefix == "CUSTOM")
        await client.shutdown()
        await admin.shutdown()
    }

    /// `fcall(_:keys:arguments:then:)`: the function and the read run in one MULTI block, and the
    /// block fails as the command in it that failed would have alone.
    @Test func aFunctionAndTheReadAfterItRunAsOneBlock() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server, functions: [Self.library])
        let admin = try Self.client(for: server)
        let (result, read) = try await client.fcall("incr_by_two", keys: ["counter"], arguments: [], then: ["GET", "counter"])
        #expect(result == .integer(2) && read == .bulkString(Array("2".utf8)))
        // The function's own error.
        let failed = try #require(await Result { try await client.fcall("fail", keys: ["counter"], arguments: [], then: ["GET", "counter"]) }.failure as? RedisClientError)
        #expect(failed.code == .serverError && failed.serverErrorPrefix == "CUSTOM")
        // Refused while queueing (wrong arity): the whole block is discarded, so the function did not run.
        let refused = try #require(await Result { try await client.fcall("incr_by_two", keys: ["counter"], arguments: [], then: ["GET"]) }.failure as? RedisClientError)
        #expect(refused.code == .serverError && refused.message.contains("wrong number of arguments"))
        #expect(try await admin.send("GET", "counter") == .bulkString(Array("2".utf8)), "nothing in the refused block ran")
        // A missing library is loaded again and the block repeated, as for a plain FCALL.
        _ = try await admin.send("FUNCTION", "FLUSH")
        let again = try await client.fcall("incr_by_two", keys: ["counter"], arguments: [], then: ["GET", "counter"])
        #expect(again.result == .integer(4) && again.read == .bulkString(Array("4".utf8)))
        await client.shutdown()
        await admin.shutdown()
    }

    @Test func functionsAreThereAgainAfterTheServerRestarts() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server, functions: [Self.library])
        #expect(try await client.fcall("incr_by_two", keys: ["counter"]) == .integer(2))
        await server.kill()
        let restarted = try await server.restart()  // no persistence: the new server has no functions
        // Every connection (one per event loop, used in turn) must be a new one: a command can still
        // land on one that has not yet seen the old server die, and fails with connection_closed.
        #expect(await eventually {
            for _ in 0..<4 where try await client.send("PING") != .simpleString("PONG") { return false }
            return true
        })
        #expect(try await client.fcall("incr_by_two", keys: ["counter"]) == .integer(2))
        await client.shutdown()
        await restarted.stop()
    }

    @Test func aShutDownClientRefusesCommands() async throws {
        let server = try await RedisServer.start()
        let client = try Self.client(for: server)
        _ = try await client.send("PING")
        await client.shutdown()
        let error = try #require(await Result { try await client.send("PING") }.failure as? RedisClientError)
        #expect(error.code == .shutDown)
    }

    /// Runs `body`, which must fail; returns its error code (`nil` if it succeeded) and when it ended.
    static func failureCode(_ body: () async throws -> RESPValue) async -> (RedisClientError.Code?, ContinuousClock.Instant) {
        do {
            _ = try await body()
            return (nil, .now)
        } catch {
            return ((error as? RedisClientError)?.code, .now)
        }
    }
}

extension Result where Failure == any Error {
    /// Captures the outcome of an async throwing call.
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }

    var failure: (any Error)? {
        if case .failure(let error) = self { error } else { nil }
    }
}
