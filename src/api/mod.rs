//! The wire edge: the `authzed.api.v1` gRPC services (`grpc`), bearer-key authentication
//! (`auth`, which decides the `Caller`), and the one translation of every error into a gRPC
//! status (`status`). Nothing below this layer knows protobuf.

pub mod audit_json;
pub mod auth;
pub mod grpc;
pub mod status;
