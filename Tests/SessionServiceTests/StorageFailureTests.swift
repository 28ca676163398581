import Foundation
import RedisTestSupport
import Testing

/// Redis going away answers 503 quickly; Redis coming back is served again without a restart.
@Suite struct StorageFailureTests {
    @Test func redisDownAnswers503FastAndRecoversWithoutRestart() async throws {
        let redis = try await RedisServer.start()
        // A failover deadline far past the bounds below: one server has no failover to wait for,
        // so a 503 that took anywhere near it would be the bug these bounds catch.
        let service = try await TestService.start(redis: redis) {
            $0.redisTimeout = .milliseconds(500)
            $0.failoverTimeout = .seconds(20)
        }
        // Set-up: the first connect and handshake may take longer than the tight deadline under load.
        #expect(await eventually { try await service.request("GET", "/readyz").status == 200 })
        let (token, _) = try await service.create(#"{"data":{"kept":false}}"#)
        await redis.kill()

        for attempt in 0..<3 {
            let started = ContinuousClock.now
            let response = try await service.get(token)
            let elapsed = ContinuousClock.now - started
            #expect(response.status == 503, "attempt \(attempt)")
            #expect(response.errorCode == "storage_unavailable")
            #expect(response.header("Retry-After") == "1")
            #expect(elapsed < .seconds(5), "answered after \(elapsed)")
        }
        let create = try await service.request("POST", "/v1/sessions", json: "{}")
        #expect(create.status == 503 && create.errorCode == "storage_unavailable")
        let ready = try await service.request("GET", "/readyz")
        #expect(ready.status == 503 && ready.errorCode == "storage_unavailable")

        // A stuck Redis (accepts, never answers) is bounded by the deadline too.
        let restarted = try await redis.restart()
        #expect(await eventually { try await service.request("GET", "/readyz").status == 200 })
        restarted.pause()
        let started = ContinuousClock.now
        let stuck = try await service.request("POST", "/v1/sessions", json: "{}")
        #expect(stuck.status == 503)
        // Bounded by the 500 ms deadline, not left hanging: ten times it leaves room for a busy
        // machine, and a hang would run into the test client's 15 s.
        #expect(ContinuousClock.now - started < .seconds(5))
        restarted.resume()

        #expect(await eventually { try await service.request("POST", "/v1/sessions", json: "{}").status == 201 })
        #expect(try await service.request("GET", "/readyz").status == 200)
        await restarted.stop()
        await service.stop()
    }
}
