//! `arbor.v1.OrganizationService` and `arbor.v1.ImpersonationService`: each request checked
//! against the caller's scope (decided by the evaluator through `Guard`), then handed to the
//! identity `Directory`, which commits records, relationships and the audit entry together.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::Shared;
use super::consistency::encode_zedtoken;
use super::guard::Guard;
use super::proto::arbor::v1 as pb;
use crate::api::status::ApiError;
use crate::identity::directory::{
    Branding, Credential, Directory, ExternalId, ImpersonationSession, Invitation, InvitationState,
    NewOrganization, NewUser, OrgUpdate, Organization, Role, User, UserState,
};
use crate::identity::scope::{self, ORGANIZATION_TYPE};
use crate::identity::{IdentityError, Source};
use crate::model::{SubjectFilter, Timestamp};

use pb::impersonation_service_server::ImpersonationService;
use pb::organization_service_server::OrganizationService;

/// Page size when a request gives none.
const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page a request may ask for.
const MAX_PAGE_SIZE: usize = 1000;
/// Invitation lifetime when a request gives none.
const DEFAULT_INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Impersonation session lifetime when a request gives none.
const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(3600);

/// The OrganizationService and ImpersonationService implementation.
#[derive(Clone)]
pub struct OrganizationApi {
    shared: Arc<Shared>,
    directory: Directory,
}

impl OrganizationApi {
    /// Serves organizations from `directory`, deciding scope over `shared`'s evaluator.
    pub fn new(shared: Arc<Shared>, directory: Directory) -> Self {
        OrganizationApi { shared, directory }
    }

    /// Refuses a delegated caller unless `org` is in its scope.
    async fn require_org(&self, guard: &Guard, org: &str) -> Result<(), ApiError> {
        if guard.scope().is_none() {
            return Ok(());
        }
        let ctx = self.shared.head_context(ORGANIZATION_TYPE)?;
        guard.require_org(&ctx, org).await
    }

    /// Refuses a delegated caller unless it administers the organization above `org`; a root
    /// organization is the platform's alone.
    async fn require_parent_of(&self, guard: &Guard, org: &Organization) -> Result<(), ApiError> {
        match &org.parent {
            None => guard.require_platform("changing a root organization"),
            Some(parent) => self.require_org(guard, parent).await,
        }
    }

    /// Refuses a delegated caller unless `user` is a direct member or admin of an organization
    /// in its scope.
    async fn require_user_visible(&self, guard: &Guard, user: &str) -> Result<(), ApiError> {
        if guard.scope().is_none() {
            return Ok(());
        }
        let ctx = self.shared.head_context(ORGANIZATION_TYPE)?;
        let filter = SubjectFilter {
            subject_type: "user".to_string(),
            subject_id: Some(user.to_string()),
            relation: Some(None),
        };
        let mut orgs = Vec::new();
        for relation in ["member", "admin"] {
            for rel in ctx
                .snapshot()
                .read_by_subject(ORGANIZATION_TYPE, relation, &filter)
            {
                orgs.push(rel?.resource().object_id().to_string());
            }
        }
        for org in orgs {
            if guard.require_org(&ctx, &org).await.is_ok() {
                return Ok(());
            }
        }
        Err(guard.denied(&format!("user `{user}`")))
    }
}

fn page_size(requested: u32) -> usize {
    match requested as usize {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

fn page_token(token: &str) -> Option<&str> {
    (!token.is_empty()).then_some(token)
}

fn time(t: Timestamp) -> String {
    t.to_string()
}

fn reason(text: &str) -> Option<String> {
    (!text.trim().is_empty()).then(|| text.to_string())
}

fn role(value: i32, field: &str) -> Result<Role, ApiError> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Member) => Ok(Role::Member),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        _ => Err(ApiError::field(
            field,
            value.to_string(),
            "the role must be ROLE_MEMBER or ROLE_ADMIN",
        )),
    }
}

fn role_to_proto(role: Role) -> i32 {
    match role {
        Role::Member => pb::Role::Member as i32,
        Role::Admin => pb::Role::Admin as i32,
    }
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.trim().is_empty() {
        Err(ApiError::field(field, value, "is required"))
    } else {
        Ok(value)
    }
}

fn branding(b: Option<&pb::Branding>) -> Branding {
    b.map(|b| Branding {
        logo_url: (!b.logo_url.is_empty()).then(|| b.logo_url.clone()),
        login_url: (!b.login_url.is_empty()).then(|| b.login_url.clone()),
    })
    .unwrap_or_default()
}

fn org_to_proto(o: &Organization) -> pb::Organization {
    pb::Organization {
        id: o.id.clone(),
        parent: o.parent.clone().unwrap_or_default(),
        display_name: o.display_name.clone(),
        slug: o.slug.clone(),
        branding: Some(pb::Branding {
            logo_url: o.branding.logo_url.clone().unwrap_or_default(),
            login_url: o.branding.login_url.clone().unwrap_or_default(),
        }),
        domains: o
            .domains
            .iter()
            .map(|d| pb::Domain {
                name: d.name.clone(),
                verified: d.verified,
            })
            .collect(),
        created_at: time(o.created_at),
        updated_at: time(o.updated_at),
    }
}

fn user_to_proto(u: &User) -> pb::User {
    pb::User {
        id: u.id.clone(),
        display_name: u.display_name.clone(),
        email: u.email.clone().unwrap_or_default(),
        state: match u.state {
            UserState::Active => "active",
            UserState::Suspended => "suspended",
            UserState::Deleted => "deleted",
        }
        .to_string(),
        external_ids: u
            .external
            .iter()
            .map(|e| pb::ExternalId {
                source: e.source.clone(),
                id: e.id.clone(),
            })
            .collect(),
        created_at: time(u.created_at),
        updated_at: time(u.updated_at),
    }
}

fn invitation_to_proto(i: &Invitation, now: Timestamp) -> pb::Invitation {
    let state = match i.state {
        InvitationState::Pending if i.expires_at <= now => "expired",
        InvitationState::Pending => "pending",
        InvitationState::Accepted => "accepted",
        InvitationState::Revoked => "revoked",
    };
    pb::Invitation {
        id: i.id.clone(),
        organization: i.org.clone(),
        user: i.user.clone(),
        role: role_to_proto(i.role),
        state: state.to_string(),
        created_at: time(i.created_at),
        expires_at: time(i.expires_at),
    }
}

fn credential_to_proto(c: &Credential) -> pb::Credential {
    pb::Credential {
        id: c.id.clone(),
        organization: c.org.clone(),
        name: c.name.clone(),
        created_at: time(c.created_at),
        revoked_at: c.revoked_at.map(time).unwrap_or_default(),
    }
}

fn session_to_proto(s: &ImpersonationSession) -> pb::ImpersonationSession {
    pb::ImpersonationSession {
        id: s.id.clone(),
        initiator: s.initiator.clone(),
        user: s.user.clone(),
        reason: s.reason.clone(),
        created_at: time(s.created_at),
        expires_at: time(s.expires_at),
        revoked_at: s.revoked_at.map(time).unwrap_or_default(),
    }
}

fn ttl(seconds: u32, default: Duration) -> Duration {
    if seconds == 0 {
        default
    } else {
        Duration::from_secs(u64::from(seconds))
    }
}

fn not_found_as_denied(guard: &Guard, e: IdentityError, what: &str) -> ApiError {
    // A delegated caller learns nothing about records outside its scope.
    match e {
        IdentityError::NotFound { .. } if guard.scope().is_some() => guard.denied(what),
        other => other.into(),
    }
}

#[tonic::async_trait]
impl OrganizationService for OrganizationApi {
    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::CreateOrganizationResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("display_name", &req.display_name)?;
        if req.parent.is_empty() {
            guard.require_platform("creating a root organization")?;
        } else {
            self.require_org(&guard, &req.parent).await?;
        }
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let new = NewOrganization {
            id: (!req.id.is_empty()).then(|| req.id.clone()),
            parent: (!req.parent.is_empty()).then(|| req.parent.clone()),
            display_name: req.display_name.clone(),
            slug: (!req.slug.is_empty()).then(|| req.slug.clone()),
            branding: branding(req.branding.as_ref()),
            domains: req.domains.clone(),
        };
        let (org, revision) = self
            .directory
            .create_org(&actor, new)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateOrganizationResponse {
            organization: Some(org_to_proto(&org)),
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("id", &req.id)?;
        self.require_org(&guard, &req.id).await?;
        let org = self.directory.get_org(&req.id).map_err(ApiError::from)?;
        Ok(Response::new(pb::GetOrganizationResponse {
            organization: Some(org_to_proto(&org)),
        }))
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        let under = if req.under.is_empty() {
            match guard.caller() {
                crate::api::auth::Caller::OrgCredential { org, .. } => Some(org.clone()),
                caller if caller.is_platform() => None,
                _ => {
                    return Err(ApiError::field(
                        "under",
                        "",
                        "is required for a caller scoped to organizations",
                    )
                    .into());
                }
            }
        } else {
            Some(req.under.clone())
        };
        if let Some(u) = &under {
            self.require_org(&guard, u).await?;
        }
        let (orgs, next) = self
            .directory
            .list_orgs(
                under.as_deref(),
                req.subtree,
                page_token(&req.page_token),
                page_size(req.page_size),
            )
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListOrganizationsResponse {
            organizations: orgs.iter().map(org_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::UpdateOrganizationResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("id", &req.id)?;
        self.require_org(&guard, &req.id).await?;
        let mut update = OrgUpdate::default();
        for field in &req.update_mask {
            match field.as_str() {
                "display_name" => update.display_name = Some(req.display_name.clone()),
                "slug" => update.slug = Some(req.slug.clone()),
                "branding" => update.branding = Some(branding(req.branding.as_ref())),
                "domains" => update.domains = Some(req.domains.clone()),
                other => {
                    return Err(ApiError::field(
                        "update_mask",
                        other,
                        "names no field; use display_name, slug, branding or domains",
                    )
                    .into());
                }
            }
        }
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let (org, revision) = self
            .directory
            .update_org(&actor, &req.id, update)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::UpdateOrganizationResponse {
            organization: Some(org_to_proto(&org)),
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn move_organization(
        &self,
        request: Request<pb::MoveOrganizationRequest>,
    ) -> Result<Response<pb::MoveOrganizationResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("id", &req.id)?;
        required("new_parent", &req.new_parent)?;
        self.require_org(&guard, &req.id).await?;
        let current = self
            .directory
            .get_org(&req.id)
            .map_err(|e| not_found_as_denied(&guard, e, &format!("organization `{}`", req.id)))?;
        self.require_parent_of(&guard, &current).await?;
        self.require_org(&guard, &req.new_parent).await?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let (org, revision) = self
            .directory
            .move_org(&actor, &req.id, &req.new_parent)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::MoveOrganizationResponse {
            organization: Some(org_to_proto(&org)),
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn delete_organization(
        &self,
        request: Request<pb::DeleteOrganizationRequest>,
    ) -> Result<Response<pb::DeleteOrganizationResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("id", &req.id)?;
        self.require_org(&guard, &req.id).await?;
        let current = self
            .directory
            .get_org(&req.id)
            .map_err(|e| not_found_as_denied(&guard, e, &format!("organization `{}`", req.id)))?;
        self.require_parent_of(&guard, &current).await?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let revision = self
            .directory
            .delete_org(&actor, &req.id, req.cascade)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DeleteOrganizationResponse {
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("display_name", &req.display_name)?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let new = NewUser {
            id: (!req.id.is_empty()).then(|| req.id.clone()),
            display_name: req.display_name.clone(),
            email: (!req.email.is_empty()).then(|| req.email.clone()),
            external: req
                .external_ids
                .iter()
                .map(|e| ExternalId {
                    source: e.source.clone(),
                    id: e.id.clone(),
                })
                .collect(),
        };
        let (user, revision) = self
            .directory
            .create_user(&actor, new)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(user_to_proto(&user)),
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("id", &req.id)?;
        self.require_user_visible(&guard, &req.id).await?;
        let user = self.directory.get_user(&req.id).map_err(ApiError::from)?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("organization", &req.organization)?;
        required("user", &req.user)?;
        let role = role(req.role, "role")?;
        self.require_org(&guard, &req.organization).await?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let revision = self
            .directory
            .add_member(&actor, &req.organization, &req.user, role)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::AddMemberResponse {
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("organization", &req.organization)?;
        required("user", &req.user)?;
        let role = role(req.role, "role")?;
        self.require_org(&guard, &req.organization).await?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let revision = self
            .directory
            .remove_member(&actor, &req.organization, &req.user, role)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RemoveMemberResponse {
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("organization", &req.organization)?;
        let role = role(req.role, "role")?;
        self.require_org(&guard, &req.organization).await?;
        let (users, next) = self
            .directory
            .list_members(
                &req.organization,
                role,
                page_token(&req.page_token),
                page_size(req.page_size),
            )
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListMembersResponse {
            users,
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::CreateInvitationResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("organization", &req.organization)?;
        required("user", &req.user)?;
        let role = role(req.role, "role")?;
        self.require_org(&guard, &req.organization).await?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let (invitation, token, revision) = self
            .directory
            .create_invitation(
                &actor,
                &req.organization,
                &req.user,
                role,
                ttl(req.ttl_seconds, DEFAULT_INVITATION_TTL),
            )
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateInvitationResponse {
            invitation: Some(invitation_to_proto(&invitation, Timestamp::now())),
            token,
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("token", &req.token)?;
        required("user", &req.user)?;
        if let crate::api::auth::Caller::Impersonation { user, .. } = guard.caller() {
            if *user != req.user {
                return Err(guard.denied(&format!("user `{}`", req.user)).into());
            }
        }
        let actor = guard.actor(Source::Admin, None);
        let (invitation, revision) = self
            .directory
            .accept_invitation(&actor, &req.token, &req.user)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::AcceptInvitationResponse {
            invitation: Some(invitation_to_proto(&invitation, Timestamp::now())),
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn revoke_invitation(
        &self,
        request: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::RevokeInvitationResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("id", &req.id)?;
        let invitation = self
            .directory
            .get_invitation(&req.id)
            .map_err(|e| not_found_as_denied(&guard, e, &format!("invitation `{}`", req.id)))?;
        self.require_org(&guard, &invitation.org).await?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let revision = self
            .directory
            .revoke_invitation(&actor, &req.id)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RevokeInvitationResponse {
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("organization", &req.organization)?;
        self.require_org(&guard, &req.organization).await?;
        let (invitations, next) = self
            .directory
            .list_invitations(
                &req.organization,
                page_token(&req.page_token),
                page_size(req.page_size),
            )
            .map_err(ApiError::from)?;
        let now = Timestamp::now();
        Ok(Response::new(pb::ListInvitationsResponse {
            invitations: invitations
                .iter()
                .map(|i| invitation_to_proto(i, now))
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn create_credential(
        &self,
        request: Request<pb::CreateCredentialRequest>,
    ) -> Result<Response<pb::CreateCredentialResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("organization", &req.organization)?;
        required("name", &req.name)?;
        self.require_org(&guard, &req.organization).await?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let (credential, secret, revision) = self
            .directory
            .create_credential(&actor, &req.organization, &req.name)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateCredentialResponse {
            credential: Some(credential_to_proto(&credential)),
            secret,
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn revoke_credential(
        &self,
        request: Request<pb::RevokeCredentialRequest>,
    ) -> Result<Response<pb::RevokeCredentialResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("id", &req.id)?;
        let credential = self
            .directory
            .get_credential(&req.id)
            .map_err(|e| not_found_as_denied(&guard, e, &format!("credential `{}`", req.id)))?;
        self.require_org(&guard, &credential.org).await?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let revision = self
            .directory
            .revoke_credential(&actor, &req.id)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RevokeCredentialResponse {
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn list_credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        required("organization", &req.organization)?;
        self.require_org(&guard, &req.organization).await?;
        let (credentials, next) = self
            .directory
            .list_credentials(
                &req.organization,
                page_token(&req.page_token),
                page_size(req.page_size),
            )
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListCredentialsResponse {
            credentials: credentials.iter().map(credential_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}

#[tonic::async_trait]
impl ImpersonationService for OrganizationApi {
    async fn open_session(
        &self,
        request: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::OpenSessionResponse>, Status> {
        let guard = Guard::of(&request)?;
        if !guard.caller().is_support() {
            return Err(ApiError::PermissionDenied(format!(
                "opening an impersonation session requires a platform key with the support role; `{}` has none",
                guard.caller().log_id()
            ))
            .into());
        }
        let req = request.into_inner();
        required("user", &req.user)?;
        required("reason", &req.reason)?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let (session, token, revision) = self
            .directory
            .open_session(
                &actor,
                &req.user,
                &req.reason,
                ttl(req.ttl_seconds, DEFAULT_SESSION_TTL),
            )
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::OpenSessionResponse {
            session: Some(session_to_proto(&session)),
            token,
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let guard = Guard::of(&request)?;
        guard.require_platform("RevokeSession")?;
        let req = request.into_inner();
        required("id", &req.id)?;
        let actor = guard.actor(Source::Admin, reason(&req.reason));
        let revision = self
            .directory
            .revoke_session(&actor, &req.id)
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RevokeSessionResponse {
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let guard = Guard::of(&request)?;
        guard.require_platform("ListSessions")?;
        let req = request.into_inner();
        let sessions = self
            .directory
            .list_sessions(req.include_ended, Timestamp::now())
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions.iter().map(session_to_proto).collect(),
        }))
    }
}

/// The organization ids of `org`'s subtree at the head (for audit queries).
pub(super) fn subtree_at_head(
    shared: &Shared,
    org: &str,
) -> Result<std::collections::BTreeSet<String>, ApiError> {
    let head = shared.datastore.head_revision()?;
    let snapshot = shared.datastore.snapshot(head)?;
    Ok(scope::subtree(snapshot.as_ref(), org)?)
}
