import Logging
import RedisClient
import ServiceLifecycle
import Synchronization

/// The layout this instance writes sessions in, as the fleet last agreed: layout 1 until it has
/// heard (layout 1 is safe to write in any state of the fleet: every version reads it, and once
/// layout 2 is active such sessions are moved on their next use).
final class ActiveLayout: Sendable {
    private let state = Mutex<Int?>(nil)

    /// The fleet's active layout as last heard; `nil` before the first answer.
    var active: Int? { state.withLock { $0 } }

    func heard(_ active: Int) {
        state.withLock { $0 = active }
    }

    /// The layout new sessions are written in.
    var writing: SessionLayout {
        active.flatMap { SessionLayout(rawValue: min($0, SessionLayout.newest.rawValue)) } ?? .perSessionSlot
    }

    /// Where a session is looked for: the layout written first, then the other keys (layouts 2
    /// and 3 share theirs).
    var searchOrder: [SessionLayout] {
        switch writing {
        case .swept: Self.sweptFirst
        case .bucketed: Self.bucketedFirst
        case .perSessionSlot: Self.perSessionSlotFirst
        }
    }

    /// Returns once the fleet's layout is known, or after `limit` (polled: it happens once, at start).
    func waitUntilHeard(within limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while active == nil, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private static let sweptFirst: [SessionLayout] = [.swept, .perSessionSlot]
    private static let bucketedFirst: [SessionLayout] = [.bucketed, .perSessionSlot]
    private static let perSessionSlotFirst: [SessionLayout] = [.perSessionSlot, .bucketed]
}

/// This instance's part in the fleet: it announces the layouts it supports every
/// ``announceInterval`` (each announcement lapses after ``announcementLifetime``), follows the
/// active layout, moves the fleet on when ``FleetLayout`` says so, removes the function libraries
/// no live instance uses any more, and withdraws its announcement when it shuts down. When the
/// fleet's active layout is one it cannot write, it stops the application with an error.
struct FleetService: Service {
    static let announceInterval = Duration.seconds(5)
    static let announcementLifetime = Duration.seconds(15)
    static let libraryCollectionInterval = Duration.seconds(60)
    static let firstAnswerRetry = Duration.milliseconds(250)

    let fleet: FleetRegistry
    let layout: ActiveLayout
    let logger: Logger

    func run() async throws {
        var lastCollection: ContinuousClock.Instant?
        while true {
            do {
                let state = try await fleet.announce(lifetime: Self.announcementLifetime)
                layout.heard(state.active)
                if !state.legacy, lastCollection.map({ .now - $0 >= Self.libraryCollectionInterval }) ?? true {
                    lastCollection = .now
                    await fleet.collectLibraries(state: state)
                }
            } catch let error as LayoutRefusal {
                logger.critical("\(error.message)")
                throw error
            } catch {
                logger.warning("could not announce this instance to the fleet; trying again", metadata: ["error": "\(error)"])
            }
            // Until the first answer, sooner: the HTTP server waits for it.
            let pause = layout.active == nil ? Self.firstAnswerRetry : Self.announceInterval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
            if Task.isShuttingDownGracefully || Task.isCancelled { break }
        }
        // Withdrawn at once, so that a fleet waiting for the last old instance moves on sooner.
        try? await fleet.withdraw()
    }
}

/// An instance may not write the fleet's active layout (it is older than the finalized layout).
struct LayoutRefusal: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// The fleet's shared state in Redis (`<prefix>fleet`, kept by ``SessionFunctions``' fleet
/// functions) as this instance reads and changes it.
struct FleetRegistry: Sendable {
    let redis: RedisClient
    let keys: SessionKeys
    let me: FleetLayout.Member
    let logger: Logger

    init(redis: RedisClient, keys: SessionKeys, instance: String, logger: Logger) {
        self.redis = redis
        self.keys = keys
        self.me = FleetLayout.Member(instance: instance, layouts: SessionLayout.supported, functionProtocol: SessionFunctions.protocolVersion)
        self.logger = logger
    }

    /// The fleet state with the decision carried out, after announcing `me` for `lifetime`.
    /// - Throws: ``LayoutRefusal`` when this instance cannot write the active layout.
    func announce(lifetime: Duration) async throws -> (active: Int, legacy: Bool, members: [FleetLayout.Member]) {
        var state = try await call("fleet_announce", [
            RedisArgument(me.instance), RedisArgument(me.layouts.lowerBound), RedisArgument(me.layouts.upperBound),
            RedisArgument(me.functionProtocol), RedisArgument(lifetime.milliseconds),
        ])
        for _ in 0..<3 {
            let legacyFound = state.active == nil ? try await legacyLibraryFound() : false
            switch state.decide(for: me, legacyLibraryFound: { legacyFound }) {
            case .keep:
                return (state.active ?? SessionLayout.perSessionSlot.rawValue, state.legacy, state.members)
            case .initialize(let active, let legacy):
                logger.info(
                    legacy
                        ? "storage layout 1 is active: a sessiond from before layout versions has used this Redis; run `sessiond --finalize-layout` once none runs any more"
                        : "storage layout \(active) is active: no sessiond from before layout versions has used this Redis",
                    metadata: ["layout": "\(active)"]
                )
                state = try await set(expected: nil, active: active, legacy: legacy ? "1" : "")
            case .advance(let from, let to):
                logger.notice("every live instance supports storage layout \(to): it is active now", metadata: ["previous_layout": "\(from)"])
                state = try await set(expected: from, active: to, legacy: "")
            case .refuse(let message):
                throw LayoutRefusal(message: message)
            }
        }
        // Another instance changed the state between each read and write: the next round settles it.
        return (state.active ?? SessionLayout.perSessionSlot.rawValue, state.legacy, state.members)
    }

    /// Withdraws `me`'s announcement.
    func withdraw() async throws {
        _ = try await call("fleet_announce", [RedisArgument(me.instance), "0", "0", "0", "0"])
    }

    /// `sessiond --finalize-layout`: makes the newest layout this build supports active, and ends
    /// the wait for instances from before announcements. Returns the active layout.
    /// - Throws: ``FleetLayout/FinalizeRefusal`` while a live instance needs an older layout.
    func finalize() async throws -> Int {
        var state = try await call("fleet_announce", [RedisArgument(me.instance), "0", "0", "0", ""])
        for _ in 0..<3 {
            let target = try state.finalize(for: me).get()
            if state.active == target, !state.legacy { return target }
            state = try await set(expected: state.active, active: target, legacy: "0")
        }
        throw LayoutRefusal(message: "the fleet's layout kept changing while it was being finalized; run the command again")
    }

    /// Removes the function libraries no live instance uses: once no instance from before
    /// announcements may run, theirs (`sessiond`, `sessiond_v2`, `sessiond_v3`), and those of
    /// older protocols than this instance's that no live instance announces. Newer ones are kept (an
    /// instance of a newer version may be starting). An instance whose library was removed while it
    /// still ran (say, one started after finalization) reloads it on its next call. Best effort.
    func collectLibraries(state: (active: Int, legacy: Bool, members: [FleetLayout.Member])) async {
        let live = Set(state.members.map(\.functionProtocol) + [me.functionProtocol])
        do {
            for reply in try await redis.sendToEveryPrimary(Self.listLibraries) {
                for name in Self.libraryNames(in: reply) {
                    guard let version = Self.protocolVersion(ofLibrary: name), version < me.functionProtocol, !live.contains(version) else {
                        continue
                    }
                    _ = try await redis.sendToEveryPrimary(["FUNCTION", "DELETE", RedisArgument(name)])
                    logger.info("removed a function library no live instance uses", metadata: ["library": "\(name)"])
                }
            }
        } catch {
            logger.warning("could not remove unused function libraries", metadata: ["error": "\(error)"])
        }
    }

    /// Whether a version from before announcements has loaded its library on any primary.
    private func legacyLibraryFound() async throws -> Bool {
        try await redis.sendToEveryPrimary(Self.listLibraries).contains { reply in
            Self.libraryNames(in: reply).contains { Self.protocolVersion(ofLibrary: $0).map { $0 < Self.firstAnnouncingProtocol } ?? false }
        }
    }

    /// Every library whose name starts with `sessiond` (the name is a glob pattern: `sessiond`
    /// alone would match only the landed version's).
    static let listLibraries: [RedisArgument] = ["FUNCTION", "LIST", "LIBRARYNAME", "sessiond*"]

    /// The first function protocol whose instances announce themselves.
    static let firstAnnouncingProtocol = 4

    /// `sessiond` (the landed version's, protocol 1) or `sessiond_v<N>`: N; `nil` for other names.
    static func protocolVersion(ofLibrary name: String) -> Int? {
        if name == "sessiond" { return 1 }
        guard name.hasPrefix("sessiond_v") else { return nil }
        return Int(name.dropFirst("sessiond_v".count))
    }

    /// The library names in a `FUNCTION LIST` reply.
    static func libraryNames(in reply: RESPValue) -> [String] {
        (reply.array ?? []).compactMap { library in
            guard let fields = library.array, let at = fields.firstIndex(where: { $0.string == "library_name" }), at + 1 < fields.count else {
                return nil
            }
            return fields[at + 1].string
        }
    }

    private func set(expected: Int?, active: Int, legacy: String) async throws -> FleetLayout {
        try await call("fleet_set", [RedisArgument(expected.map { "\($0)" } ?? ""), RedisArgument(active), RedisArgument(legacy)])
    }

    private func call(_ function: String, _ arguments: [RedisArgument]) async throws -> FleetLayout {
        let reply = try await redis.fcall(
            // Not durable: the fleet's state is decided again at every announcement, so a change a
            // failover lost is made again within one interval; no session write waits on it.
            SessionFunctions.functionPrefix + function, keys: [RedisArgument(keys.fleet)], arguments: arguments, options: .idempotent
        )
        guard let state = FleetLayout(reply: reply) else {
            throw RedisClientError(code: .protocolError, message: "\(function) answered \(reply)")
        }
        return state
    }
}

extension FleetLayout {
    /// Reads `{active or '', legacy or '', {name, 'min max protocol expires', ...}}`.
    init?(reply: RESPValue) {
        guard let parts = reply.array, parts.count == 3, let active = parts[0].string, let legacy = parts[1].string,
            let flat = parts[2].array, flat.count % 2 == 0
        else { return nil }
        var members: [Member] = []
        for index in stride(from: 0, to: flat.count, by: 2) {
            guard let name = flat[index].string, let numbers = flat[index + 1].string?.split(separator: " ").compactMap({ Int($0) }),
                numbers.count == 4, numbers[0] <= numbers[1]
            else { return nil }
            members.append(Member(instance: name, layouts: numbers[0]...numbers[1], functionProtocol: numbers[2]))
        }
        self.init(active: active.isEmpty ? nil : Int(active), legacy: legacy == "1", members: members)
    }
}

/// Starts `service` (the HTTP server) once this instance knows the fleet's storage layout, so that
/// it writes the agreed layout from its first request and an instance too old for the fleet never
/// listens; after `limit` (Redis unreachable at start) it starts anyway, writing layout 1, which
/// every version reads, and `/readyz` answers 503 until the layout is known.
struct StartsOnceLayoutKnown: Service {
    let service: any Service
    let layout: ActiveLayout
    let limit: Duration

    func run() async throws {
        await layout.waitUntilHeard(within: limit)
        try Task.checkCancellation()
        try await service.run()
    }
}
