//! Identity: organizations, users, credentials, invitations and impersonation sessions kept as
//! records beside the relationships (`directory`), the projection of their changes to
//! relationship updates, the scope of a caller in the organization tree (`scope`), and the
//! hash-chained audit log every committed change appends to (`audit`). A record change, the
//! relationship updates it implies and its audit entry commit in one transaction.

pub mod audit;
pub mod directory;
mod error;
pub mod prelude;
pub mod scope;

pub use error::IdentityError;

/// Where a change came from, as recorded in its audit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Source {
    /// The authzed.api.v1 API (relationship writes, deletes, imports, schema writes).
    Api,
    /// The arbor.v1 administration API (organizations, members, credentials, sessions).
    Admin,
    /// SCIM provisioning.
    Scim,
    /// SSO just-in-time ingest.
    Sso,
    /// Arbor itself (expiry, retention, maintenance) or the command line on the data directory.
    System,
}

impl Source {
    /// The lowercase name used on the wire and in queries (`api`, `admin`, `scim`, `sso`,
    /// `system`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Admin => "admin",
            Source::Scim => "scim",
            Source::Sso => "sso",
            Source::System => "system",
        }
    }

    /// Parses the name `as_str` returns.
    pub fn parse(name: &str) -> Option<Source> {
        match name {
            "api" => Some(Source::Api),
            "admin" => Some(Source::Admin),
            "scim" => Some(Source::Scim),
            "sso" => Some(Source::Sso),
            "system" => Some(Source::System),
            _ => None,
        }
    }
}

/// Who made a change and why, recorded in its audit entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    /// The authenticated principal: `platform-key:<key id>`, `credential:<id>`,
    /// `session:<id>` (an impersonation session), `scim:<connection>`, `sso:<connection>`,
    /// `cli` or `system`. Never a secret.
    pub principal: String,
    /// Whom the principal acted for: `user:<id>` inside an impersonation session.
    pub on_behalf_of: Option<String>,
    /// Who opened the impersonation session the change was made in (its initiator).
    pub initiated_by: Option<String>,
    /// Where the change came from.
    pub source: Source,
    /// Why, as the caller said (required for impersonation sessions).
    pub reason: Option<String>,
    /// The request id the caller sent (`x-request-id`) or the server assigned.
    pub request_id: Option<String>,
}

impl Actor {
    /// An actor with only a principal and a source.
    pub fn new(principal: impl Into<String>, source: Source) -> Self {
        Actor {
            principal: principal.into(),
            on_behalf_of: None,
            initiated_by: None,
            source,
            reason: None,
            request_id: None,
        }
    }
}
