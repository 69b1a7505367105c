//! Arbor: a relationship-based authorization server compatible with SpiceDB's schema language
//! and API. Layers, from the bottom: `model`, `schema`, `store`, `eval`, `validate`.

pub mod api;
pub mod eval;
pub mod identity;
pub mod model;
pub mod schema;
pub mod server;
pub mod store;
pub mod validate;
