//! The gRPC API through a real server (in-process, on a loopback port, memory datastore) and a
//! tonic client: the main flows, malformed requests with their status and reason, and SpiceDB's
//! validation corpus loaded and checked over the wire.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus;
mod flows;
mod harness;
mod malformed;
mod orgs;
