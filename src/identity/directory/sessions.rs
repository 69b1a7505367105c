//! Impersonation sessions: support staff acting as an active user for a stated reason and
//! a bounded time, by a token (`arbor_imp_<id>_<secret>`) shown once; revocation, listing,
//! and authentication while the session is live.

use std::time::Duration;

use crate::identity::{Actor, IdentityError};
use crate::model::{Revision, Timestamp};

use super::commit::commit;
use super::projection::user_subject;
use super::records::{MAX_SCAN, RecordSource, SESSION, USER, load, load_all, save};
use super::tokens::{self, SESSION_PREFIX};
use super::types::{ImpersonationSession, User, UserState};
use super::users::active_user;
use super::{Directory, validate};

impl Directory {
    /// Opens a session of `actor.principal` impersonating the active user `user` for `ttl`
    /// (at most the configured maximum), for a non-blank `reason`. Returns it, its token
    /// (shown once; only its hash is kept) and the revision.
    pub fn open_session(
        &self,
        actor: &Actor,
        user: &str,
        reason: &str,
        ttl: Duration,
    ) -> Result<(ImpersonationSession, String, Revision), IdentityError> {
        let reason = validate::name("reason", reason)?;
        let max = self.config.max_session_ttl;
        let ((session, token), revision) = commit(&*self.store, actor, "session.open", |m| {
            active_user(m.txn(), user)?;
            let expires_at = validate::expiry("ttl", ttl, max, m.now())?;
            let id = validate::new_id();
            let issued = tokens::issue(SESSION_PREFIX, &id)?;
            let session = ImpersonationSession {
                id: id.clone(),
                initiator: actor.principal.clone(),
                user: user.to_string(),
                reason: reason.clone(),
                token_hash: issued.hash,
                created_at: m.now(),
                expires_at,
                revoked_at: None,
            };
            save(m.records(), SESSION, &id, &session)?;
            m.subject(user_subject(user));
            m.detail("session", id);
            m.detail("reason", reason.clone());
            m.detail("expires_at", expires_at.to_rfc3339());
            Ok((session, issued.token))
        })?;
        Ok((session, token, revision))
    }

    /// Ends a session; revoking a revoked one is `FailedPrecondition`.
    pub fn revoke_session(&self, actor: &Actor, id: &str) -> Result<Revision, IdentityError> {
        let ((), revision) = commit(&*self.store, actor, "session.revoke", |m| {
            let mut session = load_session(m.txn(), id)?;
            if session.revoked_at.is_some() {
                return Err(IdentityError::FailedPrecondition(format!(
                    "session `{id}` is already revoked"
                )));
            }
            session.revoked_at = Some(m.now());
            save(m.records(), SESSION, id, &session)?;
            m.subject(user_subject(&session.user));
            m.detail("session", id);
            Ok(())
        })?;
        Ok(revision)
    }

    /// Sessions in id order: those live at `now`, or with `include_ended` every one.
    pub fn list_sessions(
        &self,
        include_ended: bool,
        now: Timestamp,
    ) -> Result<Vec<ImpersonationSession>, IdentityError> {
        let all: Vec<ImpersonationSession> = load_all(&*self.store, SESSION, None, MAX_SCAN)?;
        Ok(all
            .into_iter()
            .filter(|s| include_ended || s.is_live_at(now))
            .collect())
    }

    /// The session `token` belongs to if it is live at `now` and its user is still active:
    /// `None` for a malformed token, an unknown id, a wrong secret (compared in constant
    /// time), an expired or revoked session, or a user no longer active.
    pub fn authenticate_session(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<Option<ImpersonationSession>, IdentityError> {
        let Some(id) = tokens::id_of(SESSION_PREFIX, token) else {
            return Ok(None);
        };
        let Some(session) = load::<ImpersonationSession>(&*self.store, SESSION, id)? else {
            return Ok(None);
        };
        if !tokens::matches(&session.token_hash, token) || !session.is_live_at(now) {
            return Ok(None);
        }
        let active = load::<User>(&*self.store, USER, &session.user)?
            .is_some_and(|u| u.state == UserState::Active);
        Ok(active.then_some(session))
    }
}

fn load_session(
    source: &(impl RecordSource + ?Sized),
    id: &str,
) -> Result<ImpersonationSession, IdentityError> {
    load(source, SESSION, id)?.ok_or_else(|| IdentityError::NotFound {
        kind: "session",
        id: id.to_string(),
    })
}
