//! Invitations: an existing user invited into an organization with a role, by a one-time
//! token (`arbor_inv_…`) that only that user may accept before it expires.

use std::time::Duration;

use crate::identity::{Actor, IdentityError};
use crate::model::Revision;

use super::commit::commit;
use super::members::grant;
use super::orgs::load_org;
use super::projection::user_subject;
use super::records::{INVITE, INVITE_ORG, RecordSource, load, pair_key, pair_seconds, save};
use super::tokens::{self, INVITATION_PREFIX};
use super::types::{Invitation, InvitationState, Role};
use super::users::active_user;
use super::{Directory, page_size, paginate, validate};

impl Directory {
    /// Invites the active user `user` into `org` as `role` for `ttl` (at most the configured
    /// maximum). Returns the invitation, its token (shown once; only its hash is kept) and
    /// the revision.
    pub fn create_invitation(
        &self,
        actor: &Actor,
        org: &str,
        user: &str,
        role: Role,
        ttl: Duration,
    ) -> Result<(Invitation, String, Revision), IdentityError> {
        let max = self.config.max_invitation_ttl;
        let ((invitation, token), revision) =
            commit(&*self.store, actor, "invitation.create", |m| {
                load_org(m.txn(), org)?;
                active_user(m.txn(), user)?;
                let expires_at = validate::expiry("ttl", ttl, max, m.now())?;
                let id = validate::new_id();
                let issued = tokens::issue(INVITATION_PREFIX, &id)?;
                let invitation = Invitation {
                    id: id.clone(),
                    org: org.to_string(),
                    user: user.to_string(),
                    role,
                    token_hash: issued.hash,
                    created_at: m.now(),
                    expires_at,
                    state: InvitationState::Pending,
                };
                save(m.records(), INVITE, &id, &invitation)?;
                m.records()
                    .put_record(INVITE_ORG, &pair_key(org, &id), Vec::new())?;
                m.org(org);
                m.subject(user_subject(user));
                m.detail("invitation", id);
                m.detail("role", role.relation());
                m.detail("expires_at", expires_at.to_rfc3339());
                Ok((invitation, issued.token))
            })?;
        Ok((invitation, token, revision))
    }

    /// Accepts an invitation by its token on behalf of `user`, who must be the invited user
    /// and active: grants the role and marks the invitation accepted. A token that matches
    /// no invitation is `NotFound` whether or not its id exists; an accepted, revoked or
    /// expired invitation is `FailedPrecondition`.
    pub fn accept_invitation(
        &self,
        actor: &Actor,
        token: &str,
        user: &str,
    ) -> Result<(Invitation, Revision), IdentityError> {
        commit(&*self.store, actor, "invitation.accept", |m| {
            let mut invitation = by_token(m.txn(), token)?;
            if invitation.state != InvitationState::Pending {
                return Err(IdentityError::FailedPrecondition(format!(
                    "invitation `{}` is {}",
                    invitation.id,
                    state_name(invitation.state)
                )));
            }
            if invitation.is_expired_at(m.now()) {
                return Err(IdentityError::FailedPrecondition(format!(
                    "invitation `{}` expired at {}",
                    invitation.id, invitation.expires_at
                )));
            }
            if invitation.user != user {
                return Err(IdentityError::FailedPrecondition(format!(
                    "invitation `{}` is for another user than `{user}`",
                    invitation.id
                )));
            }
            load_org(m.txn(), &invitation.org)?;
            active_user(m.txn(), user)?;
            grant(m, &invitation.org, user, invitation.role)?;
            invitation.state = InvitationState::Accepted;
            save(m.records(), INVITE, &invitation.id, &invitation)?;
            m.detail("invitation", invitation.id.clone());
            Ok(invitation)
        })
    }

    /// Revokes a pending (or expired) invitation; an accepted or revoked one is
    /// `FailedPrecondition`.
    pub fn revoke_invitation(&self, actor: &Actor, id: &str) -> Result<Revision, IdentityError> {
        let ((), revision) = commit(&*self.store, actor, "invitation.revoke", |m| {
            let mut invitation = load_invitation(m.txn(), id)?;
            if matches!(
                invitation.state,
                InvitationState::Accepted | InvitationState::Revoked
            ) {
                return Err(IdentityError::FailedPrecondition(format!(
                    "invitation `{id}` is {}",
                    state_name(invitation.state)
                )));
            }
            invitation.state = InvitationState::Revoked;
            save(m.records(), INVITE, id, &invitation)?;
            m.org(&invitation.org);
            m.subject(user_subject(&invitation.user));
            m.detail("invitation", id);
            Ok(())
        })?;
        Ok(revision)
    }

    /// The invitation `id` (see `Invitation::is_expired_at` for expiry).
    pub fn get_invitation(&self, id: &str) -> Result<Invitation, IdentityError> {
        load_invitation(&*self.store, id)
    }

    /// The invitations of `org` in id order, strictly after `after`, at most `limit` (0: the
    /// default page size), and the cursor of the next page.
    pub fn list_invitations(
        &self,
        org: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Invitation>, Option<String>), IdentityError> {
        load_org(&*self.store, org)?;
        let size = page_size(limit);
        let mut out = Vec::new();
        for id in pair_seconds(&*self.store, INVITE_ORG, org, after, size + 1)? {
            if let Some(invitation) = load::<Invitation>(&*self.store, INVITE, &id)? {
                out.push(invitation);
            }
        }
        Ok(paginate(out, size, |i| i.id.clone()))
    }
}

fn load_invitation(
    source: &(impl RecordSource + ?Sized),
    id: &str,
) -> Result<Invitation, IdentityError> {
    load(source, INVITE, id)?.ok_or_else(|| IdentityError::NotFound {
        kind: "invitation",
        id: id.to_string(),
    })
}

/// The invitation `token` belongs to; the same `NotFound` for a malformed token, an unknown
/// id and a wrong secret.
fn by_token(
    source: &(impl RecordSource + ?Sized),
    token: &str,
) -> Result<Invitation, IdentityError> {
    let refused = || IdentityError::NotFound {
        kind: "invitation",
        id: "of this token".to_string(),
    };
    let id = tokens::id_of(INVITATION_PREFIX, token).ok_or_else(refused)?;
    let invitation: Invitation = load(source, INVITE, id)?.ok_or_else(refused)?;
    if tokens::matches(&invitation.token_hash, token) {
        Ok(invitation)
    } else {
        Err(refused())
    }
}

fn state_name(state: InvitationState) -> &'static str {
    match state {
        InvitationState::Pending => "pending",
        InvitationState::Accepted => "already accepted",
        InvitationState::Revoked => "revoked",
    }
}
