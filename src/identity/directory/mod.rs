//! The directory: organizations (a tree under the platform), users, memberships,
//! invitations, org-scoped credentials and impersonation sessions, kept as store records and
//! projected to the prelude's relationships (`schema-examples/org-hierarchy.yaml`). Every
//! change commits its records, its relationship updates and one audit entry in one
//! transaction.
//!
//! Audit actions: `organization.create`, `organization.update`, `organization.move`,
//! `organization.delete`, `user.create`, `user.state`, `member.add`, `member.remove`,
//! `invitation.create`, `invitation.accept`, `invitation.revoke`, `credential.create`,
//! `credential.revoke`, `session.open`, `session.revoke`.

mod commit;
mod credentials;
mod graph;
mod invitations;
mod members;
mod org_delete;
mod org_move;
mod orgs;
mod projection;
mod records;
mod sessions;
mod tokens;
mod types;
mod users;
mod validate;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::store::Datastore;

pub use tokens::{CREDENTIAL_PREFIX, INVITATION_PREFIX, SESSION_PREFIX};
pub use types::{
    Branding, Credential, Domain, ExternalId, ImpersonationSession, Invitation, InvitationState,
    Membership, NewOrganization, NewUser, OrgUpdate, Organization, Role, User, UserState,
};

/// The platform root organizations hang on: `platform:saas`, the prelude's example and the
/// usual single-operator deployment.
pub const DEFAULT_PLATFORM_ID: &str = "saas";
/// Longest an invitation may stay acceptable: 30 days, long enough for a person on leave,
/// short enough that a forgotten link dies.
pub const DEFAULT_MAX_INVITATION_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Longest an impersonation session may last: 8 hours, one support shift.
pub const DEFAULT_MAX_SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// Page size when a caller asks for 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page a list returns, whatever the caller asks.
pub const MAX_PAGE_SIZE: usize = 1_000;

/// Settings of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// The platform root organizations hang on (`organization:N#platform@platform:<id>`).
    pub platform_id: String,
    /// Longest TTL `create_invitation` accepts.
    pub max_invitation_ttl: Duration,
    /// Longest TTL `open_session` accepts.
    pub max_session_ttl: Duration,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            platform_id: DEFAULT_PLATFORM_ID.to_string(),
            max_invitation_ttl: DEFAULT_MAX_INVITATION_TTL,
            max_session_ttl: DEFAULT_MAX_SESSION_TTL,
        }
    }
}

/// Organizations, users, memberships, invitations, credentials and impersonation sessions
/// over one datastore. Cheap to clone.
#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn Datastore>,
    config: DirectoryConfig,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// A directory over `store`.
    pub fn new(store: Arc<dyn Datastore>, config: DirectoryConfig) -> Self {
        Directory { store, config }
    }

    /// Its settings.
    pub fn config(&self) -> &DirectoryConfig {
        &self.config
    }
}

/// Whether any organization record exists in `store` (then the schema must keep the prelude).
pub fn organizations_exist(store: &dyn Datastore) -> Result<bool, crate::identity::IdentityError> {
    Ok(!store.scan_records(records::ORG, b"", None, 1)?.is_empty())
}

/// The number of items a list returns for a requested `limit`.
fn page_size(limit: usize) -> usize {
    match limit {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// Cuts `items` (read with one more than `size`) to a page, with the cursor of the next
/// page (the key of its last item) when more remain.
fn paginate<T>(
    mut items: Vec<T>,
    size: usize,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    if items.len() > size {
        items.truncate(size);
        let next = items.last().map(key);
        (items, next)
    } else {
        (items, None)
    }
}
