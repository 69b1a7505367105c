//! The directory's record types (organizations, users, credentials, invitations,
//! impersonation sessions) and the inputs that create or change them.

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// How an organization presents itself at login.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    /// Its logo (`https://…`).
    pub logo_url: Option<String>,
    /// Where its users log in (`https://…`).
    pub login_url: Option<String>,
}

/// An email domain an organization claims; a domain is claimed by at most one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// The lowercase DNS name (`acme.example`).
    pub name: String,
    /// Whether ownership was verified (verification is not implemented yet: always `false`).
    pub verified: bool,
}

/// A customer organization or a sub-organization of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Its id (SpiceDB object-id syntax): `organization:<id>` in the graph.
    pub id: String,
    /// The organization directly above it; `None` for a root organization.
    pub parent: Option<String>,
    /// Its name for people.
    pub display_name: String,
    /// Its unique handle: lowercase letters, digits and `-`.
    pub slug: String,
    /// Logo and login page.
    pub branding: Branding,
    /// Email domains it claims.
    pub domains: Vec<Domain>,
    /// When it was created.
    #[serde(with = "micros")]
    pub created_at: Timestamp,
    /// When its record last changed.
    #[serde(with = "micros")]
    pub updated_at: Timestamp,
}

/// The lifecycle state of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserState {
    /// May sign in and hold grants.
    Active,
    /// Holds no organization grants; reactivation restores the ones it held.
    Suspended,
    /// Gone for good: its grants were removed.
    Deleted,
}

impl UserState {
    /// The lowercase name (`active`, `suspended`, `deleted`).
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Active => "active",
            UserState::Suspended => "suspended",
            UserState::Deleted => "deleted",
        }
    }
}

/// The id of a user in an external identity source (an identity provider, a SCIM client).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExternalId {
    /// The source (`okta:acme`, `scim:<connection>`).
    pub source: String,
    /// The user's id there.
    pub id: String,
}

/// A user's place in an organization: `organization:<org>#member|admin@user:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The organization.
    pub org: String,
    /// Member or admin.
    pub role: Role,
}

/// One global identity that can belong to several organizations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Its id: `user:<id>` in the graph.
    pub id: String,
    /// Its name for people.
    pub display_name: String,
    /// Its email address, if known.
    pub email: Option<String>,
    /// Active, suspended or deleted.
    pub state: UserState,
    /// Its ids in external identity sources (each unique across users).
    pub external: Vec<ExternalId>,
    /// While suspended: the memberships suspension removed, restored on reactivation.
    pub suspended_memberships: Vec<Membership>,
    /// When it was created.
    #[serde(with = "micros")]
    pub created_at: Timestamp,
    /// When its record last changed.
    #[serde(with = "micros")]
    pub updated_at: Timestamp,
}

/// The role a user holds in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// `organization:<org>#member@user:<id>`.
    Member,
    /// `organization:<org>#admin@user:<id>`.
    Admin,
}

impl Role {
    /// The prelude relation that grants the role (`member`, `admin`).
    pub fn relation(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }
}

/// An org-scoped API credential. Its secret token is returned once, at creation; only the
/// SHA-256 of the whole token is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Its id (part of the token, never secret).
    pub id: String,
    /// The organization it acts for.
    pub org: String,
    /// Its name for people.
    pub name: String,
    /// SHA-256 of the whole token.
    pub secret_hash: [u8; 32],
    /// When it was created.
    #[serde(with = "micros")]
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    #[serde(with = "opt_micros")]
    pub revoked_at: Option<Timestamp>,
}

/// Where an invitation stands. Expiry is not a stored state: a pending invitation is
/// expired when read at or after `expires_at` (`Invitation::is_expired_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InvitationState {
    /// May be accepted (unless expired).
    Pending,
    /// Was accepted (once).
    Accepted,
    /// Was revoked.
    Revoked,
}

/// An invitation of an existing user into an organization with a role. Its token is
/// returned once, at creation; only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// Its id (part of the token, never secret).
    pub id: String,
    /// The organization the user is invited into.
    pub org: String,
    /// The invited user: the only one who may accept.
    pub user: String,
    /// The role accepting grants.
    pub role: Role,
    /// SHA-256 of the whole token.
    pub token_hash: [u8; 32],
    /// When it was created.
    #[serde(with = "micros")]
    pub created_at: Timestamp,
    /// When it stops being acceptable.
    #[serde(with = "micros")]
    pub expires_at: Timestamp,
    /// Pending, accepted or revoked.
    pub state: InvitationState,
}

impl Invitation {
    /// Whether it is pending but may no longer be accepted at `now`.
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.state == InvitationState::Pending && now >= self.expires_at
    }
}

/// Support staff acting as a user for a while, for a stated reason. Its token is returned
/// once, at opening; only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpersonationSession {
    /// Its id (part of the token, never secret).
    pub id: String,
    /// The principal that opened it (`platform-key:<id>`).
    pub initiator: String,
    /// The impersonated user.
    pub user: String,
    /// Why, as the initiator said.
    pub reason: String,
    /// SHA-256 of the whole token.
    pub token_hash: [u8; 32],
    /// When it was opened.
    #[serde(with = "micros")]
    pub created_at: Timestamp,
    /// When it ends by itself.
    #[serde(with = "micros")]
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    #[serde(with = "opt_micros")]
    pub revoked_at: Option<Timestamp>,
}

impl ImpersonationSession {
    /// Whether it may be used at `now`: neither expired nor revoked.
    pub fn is_live_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// What `Directory::create_org` creates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewOrganization {
    /// Its id; a new uuid when `None`.
    pub id: Option<String>,
    /// The organization above it; `None` makes a root organization on the platform.
    pub parent: Option<String>,
    /// Its name for people (required).
    pub display_name: String,
    /// Its handle; derived from the display name (made unique) when `None`.
    pub slug: Option<String>,
    /// Logo and login page.
    pub branding: Branding,
    /// Email domains it claims.
    pub domains: Vec<String>,
}

/// What `Directory::update_org` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgUpdate {
    /// A new name for people.
    pub display_name: Option<String>,
    /// A new handle (must be free).
    pub slug: Option<String>,
    /// New branding (replaces the old one).
    pub branding: Option<Branding>,
    /// The complete new list of claimed domains (verification of kept ones is kept).
    pub domains: Option<Vec<String>>,
}

/// What `Directory::create_user` creates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    /// Its id; a new uuid (v4) when `None`.
    pub id: Option<String>,
    /// Its name for people (required).
    pub display_name: String,
    /// Its email address.
    pub email: Option<String>,
    /// Its ids in external identity sources.
    pub external: Vec<ExternalId>,
}

/// Stores a `Timestamp` as microseconds since the epoch.
mod micros {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::model::Timestamp;

    pub(super) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.as_micros())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        i64::deserialize(d).map(Timestamp::from_micros)
    }
}

/// Stores an `Option<Timestamp>` as optional microseconds since the epoch.
mod opt_micros {
    use serde::{Deserialize as _, Deserializer, Serialize as _, Serializer};

    use crate::model::Timestamp;

    pub(super) fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        t.map(Timestamp::as_micros).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        Option::<i64>::deserialize(d).map(|m| m.map(Timestamp::from_micros))
    }
}
