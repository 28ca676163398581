import Hummingbird

/// The per-request context. Bodies are read by the handlers themselves with the configured limit,
/// so the framework's own upload limit is not used.
struct SessionRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }
}
