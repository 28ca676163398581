import Foundation
import RedisClient

/// GET throughput of RedisClient: N concurrent callers share the client's pipelined connections.
///
/// Usage: RedisClientBenchmark <redis-url> [callers=64] [seconds=5] [value-bytes=300]
/// Prints one line: `redis-client GET: <ops/s> ops/s, p50 <µs>, p99 <µs> (<callers> callers, <seconds> s)`.
let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    print("usage: RedisClientBenchmark <redis-url> [callers=64] [seconds=5] [value-bytes=300]")
    exit(2)
}
let callers = arguments.count > 2 ? Int(arguments[2]) ?? 64 : 64
let seconds = arguments.count > 3 ? Int(arguments[3]) ?? 5 : 5
let valueBytes = arguments.count > 4 ? Int(arguments[4]) ?? 300 : 300

let client = RedisClient(configuration: try RedisConfiguration(url: arguments[1]))
// The client's connects run in its background work.
let background = Task { await client.run() }
_ = try await client.send("SET", "bench:value", RedisArgument(bytes: [UInt8](repeating: 120, count: valueBytes)))

let clock = ContinuousClock()
// Warm up: connect every connection and let the loops settle before measuring.
let warmUpEnd = clock.now + .milliseconds(500)
await withTaskGroup(of: Void.self) { group in
    for _ in 0..<callers {
        group.addTask { while clock.now < warmUpEnd { _ = try? await client.send("GET", "bench:value") } }
    }
}

let end = clock.now + .seconds(seconds)
let started = clock.now
let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
    for _ in 0..<callers {
        group.addTask {
            var samples: [Duration] = []
            samples.reserveCapacity(200_000)
            while true {
                let before = clock.now
                if before >= end { break }
                let reply = try await client.send("GET", "bench:value")
                precondition(reply.bytes?.count == valueBytes, "unexpected reply")
                samples.append(clock.now - before)
            }
            return samples
        }
    }
    var all: [Duration] = []
    for try await samples in group { all.append(contentsOf: samples) }
    return all
}.sorted()
let elapsed = clock.now - started
let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18

func microseconds(_ duration: Duration) -> Int {
    Int(duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000)
}
let opsPerSecond = Int(Double(latencies.count) / elapsedSeconds)
let p50 = microseconds(latencies[latencies.count / 2])
let p99 = microseconds(latencies[latencies.count * 99 / 100])
print("redis-client GET: \(opsPerSecond) ops/s, p50 \(p50) µs, p99 \(p99) µs (\(callers) callers, \(seconds) s)")
await client.shutdown()
await background.value
