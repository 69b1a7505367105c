//! The Rust types and tonic stubs generated at build time from `proto/` (authzed.api.v1 and
//! the google.rpc messages it uses), and the encoded descriptor set that reflection serves.
#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

include!(concat!(env!("OUT_DIR"), "/protos.rs"));

/// The descriptors of every compiled file (with imports), for `grpc.reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/authzed_descriptor.bin"));
