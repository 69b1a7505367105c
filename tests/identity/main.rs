//! Tests of the identity layer: the audit log (chain, verification, anchor, queries) and the
//! directory (organizations, members, invitations, credentials, impersonation sessions).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod audit;
mod directory;
