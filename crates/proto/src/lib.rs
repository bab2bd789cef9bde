//! gRPC interfaces of labctl's daemons, generated from `proto/*.proto` at build time.

/// The bootstrap server: topology and neighbour discovery.
pub mod bootstrap {
    tonic::include_proto!("labctl.bootstrap");
}

/// The nameserver: the registry of live input nodes.
pub mod nameserver {
    tonic::include_proto!("labctl.nameserver");
}

/// A node's admin API.
pub mod node {
    tonic::include_proto!("labctl.node");
}
