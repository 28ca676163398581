import Testing

/// The suites that start whole replicated topologies (primary, replicas, sentinels). They run one
/// after another: several topologies failing over at once on a 2-core machine slow each other's
/// failovers past the deadlines the tests assert.
@Suite(.serialized) enum ReplicationSuites {}
