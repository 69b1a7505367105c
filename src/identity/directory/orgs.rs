//! Organizations: creation under the platform or a parent, reads, lists by position in the
//! tree, and updates of name, slug, branding and domains (moves are `org_move`).

use std::collections::BTreeSet;

use crate::identity::scope::ORGANIZATION_TYPE;
use crate::identity::{Actor, IdentityError};
use crate::model::Revision;
use crate::store::Datastore;

use super::commit::{Mutation, commit};
use super::records::{
    self, MAX_SCAN, ORG, ORG_DOMAIN, ORG_SLUG, ORG_TREE, RecordSource, load, load_id, pair_key,
    pair_seconds, save,
};
use super::types::{Branding, Domain, NewOrganization, OrgUpdate, Organization};
use super::{Directory, page_size, paginate, projection, validate};

/// Numbered slugs tried (`acme-2` … `acme-100`) before a random suffix.
const NUMBERED_SLUGS: u32 = 100;

impl Directory {
    /// Creates an organization: a root on the platform (`organization:N#platform@platform:P`)
    /// or a child of an existing one (`organization:N#parent@organization:X`).
    pub fn create_org(
        &self,
        actor: &Actor,
        new: NewOrganization,
    ) -> Result<(Organization, Revision), IdentityError> {
        let id = match &new.id {
            Some(id) => {
                validate::object_id("id", ORGANIZATION_TYPE, id)?;
                id.clone()
            }
            None => validate::new_id(),
        };
        if let Some(parent) = &new.parent {
            validate::object_id("parent", ORGANIZATION_TYPE, parent)?;
        }
        let display_name = validate::name("display_name", &new.display_name)?;
        let explicit_slug = new.slug.as_deref().map(validate::slug).transpose()?;
        let branding = checked_branding(&new.branding)?;
        let domains = checked_domains(&new.domains)?;
        let platform = self.config.platform_id.clone();
        let (org, revision) = commit(&*self.store, actor, "organization.create", |m| {
            if load::<Organization>(m.txn(), ORG, &id)?.is_some() {
                return Err(IdentityError::AlreadyExists(format!(
                    "organization `{id}` already exists"
                )));
            }
            if let Some(parent) = &new.parent {
                if load::<Organization>(m.txn(), ORG, parent)?.is_none() {
                    return Err(IdentityError::FailedPrecondition(format!(
                        "parent organization `{parent}` does not exist"
                    )));
                }
            }
            let slug = match &explicit_slug {
                Some(slug) => {
                    ensure_slug_free(m.txn(), slug, &id)?;
                    slug.clone()
                }
                None => free_slug(m.txn(), &display_name)?,
            };
            let org = Organization {
                id: id.clone(),
                parent: new.parent.clone(),
                display_name: display_name.clone(),
                slug,
                branding: branding.clone(),
                domains: domains
                    .iter()
                    .map(|name| Domain {
                        name: name.clone(),
                        verified: false,
                    })
                    .collect(),
                created_at: m.now(),
                updated_at: m.now(),
            };
            for domain in &domains {
                claim_domain(m, domain, &id)?;
            }
            let records = m.records();
            records.put_record(ORG_SLUG, org.slug.as_bytes(), id.clone().into_bytes())?;
            records.put_record(ORG_TREE, &tree_key(org.parent.as_deref(), &id), Vec::new())?;
            save(records, ORG, &id, &org)?;
            m.touch(projection::placement(
                &id,
                org.parent.as_deref(),
                &platform,
            )?)?;
            m.org(&id);
            if let Some(parent) = &org.parent {
                m.org(parent);
            }
            m.detail("organization", id.clone());
            m.detail("slug", org.slug.clone());
            Ok(org)
        })?;
        Ok((org, revision))
    }

    /// The organization `id`.
    pub fn get_org(&self, id: &str) -> Result<Organization, IdentityError> {
        load_org(&*self.store, id)
    }

    /// Organizations in id order, strictly after `after`, at most `limit` (0: the default
    /// page size), and the cursor of the next page. `under: None` lists the roots, or with
    /// `subtree` every organization; `under: Some(x)` lists x's children, or with `subtree`
    /// every organization below x (not x itself).
    pub fn list_orgs(
        &self,
        under: Option<&str>,
        subtree: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Organization>, Option<String>), IdentityError> {
        let size = page_size(limit);
        let store: &dyn Datastore = &*self.store;
        let ids = match (under, subtree) {
            (None, false) => pair_seconds(store, ORG_TREE, "", after, size + 1)?,
            (None, true) => {
                let orgs = records::load_all::<Organization>(store, ORG, after, size + 1)?;
                return Ok(paginate(orgs, size, |o| o.id.clone()));
            }
            (Some(parent), false) => {
                load_org(store, parent)?;
                pair_seconds(store, ORG_TREE, parent, after, size + 1)?
            }
            (Some(root), true) => {
                let mut below = self.subtree(root)?;
                below.remove(root);
                below
                    .into_iter()
                    .filter(|id| after.is_none_or(|a| id.as_str() > a))
                    .take(size + 1)
                    .collect()
            }
        };
        let orgs = ids
            .iter()
            .map(|id| load_org(store, id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paginate(orgs, size, |o| o.id.clone()))
    }

    /// The ids of `id` and every organization below it, from the records.
    pub fn subtree(&self, id: &str) -> Result<BTreeSet<String>, IdentityError> {
        load_org(&*self.store, id)?;
        record_subtree(&*self.store, id)
    }

    /// Changes an organization's name, slug, branding or domains (no relationship changes).
    pub fn update_org(
        &self,
        actor: &Actor,
        id: &str,
        update: OrgUpdate,
    ) -> Result<(Organization, Revision), IdentityError> {
        let display_name = update
            .display_name
            .as_deref()
            .map(|n| validate::name("display_name", n))
            .transpose()?;
        let slug = update.slug.as_deref().map(validate::slug).transpose()?;
        let branding = update.branding.as_ref().map(checked_branding).transpose()?;
        let domains = update.domains.as_deref().map(checked_domains).transpose()?;
        commit(&*self.store, actor, "organization.update", |m| {
            let mut org = load_org(m.txn(), id)?;
            m.org(id);
            m.detail("organization", id);
            if let Some(name) = &display_name {
                org.display_name = name.clone();
                m.detail("display_name", name.clone());
            }
            if let Some(slug) = &slug {
                if *slug != org.slug {
                    ensure_slug_free(m.txn(), slug, id)?;
                    let records = m.records();
                    records.delete_record(ORG_SLUG, org.slug.as_bytes())?;
                    records.put_record(ORG_SLUG, slug.as_bytes(), id.as_bytes().to_vec())?;
                    org.slug = slug.clone();
                    m.detail("slug", slug.clone());
                }
            }
            if let Some(branding) = &branding {
                org.branding = branding.clone();
                m.detail("branding", "replaced");
            }
            if let Some(domains) = &domains {
                for old in &org.domains {
                    if !domains.contains(&old.name) {
                        m.records().delete_record(ORG_DOMAIN, old.name.as_bytes())?;
                    }
                }
                let mut kept = Vec::with_capacity(domains.len());
                for name in domains {
                    match org.domains.iter().find(|d| d.name == *name) {
                        Some(old) => kept.push(old.clone()),
                        None => {
                            claim_domain(m, name, id)?;
                            kept.push(Domain {
                                name: name.clone(),
                                verified: false,
                            });
                        }
                    }
                }
                org.domains = kept;
                m.detail("domains", domains.join(","));
            }
            org.updated_at = m.now();
            save(m.records(), ORG, id, &org)?;
            Ok(org)
        })
    }
}

/// The organization record `id`, or `NotFound`.
pub(super) fn load_org(
    source: &(impl RecordSource + ?Sized),
    id: &str,
) -> Result<Organization, IdentityError> {
    load(source, ORG, id)?.ok_or_else(|| IdentityError::NotFound {
        kind: "organization",
        id: id.to_string(),
    })
}

/// The key of `id` in the tree index (under the empty parent for a root).
pub(super) fn tree_key(parent: Option<&str>, id: &str) -> Vec<u8> {
    pair_key(parent.unwrap_or(""), id)
}

/// The ids of `id` and every organization below it in the tree index.
pub(super) fn record_subtree(
    source: &(impl RecordSource + ?Sized),
    id: &str,
) -> Result<BTreeSet<String>, IdentityError> {
    let mut seen = BTreeSet::new();
    let mut pending = vec![id.to_string()];
    while let Some(current) = pending.pop() {
        if seen.len() >= MAX_SCAN {
            return Err(IdentityError::FailedPrecondition(format!(
                "the subtree of organization `{id}` has more than {MAX_SCAN} organizations"
            )));
        }
        for child in pair_seconds(source, ORG_TREE, &current, None, MAX_SCAN)? {
            if !seen.contains(&child) {
                pending.push(child);
            }
        }
        seen.insert(current);
    }
    Ok(seen)
}

/// Fails with `AlreadyExists` when another organization than `owner` has `slug`.
fn ensure_slug_free(
    source: &(impl RecordSource + ?Sized),
    slug: &str,
    owner: &str,
) -> Result<(), IdentityError> {
    match load_id(source, ORG_SLUG, slug.as_bytes())? {
        Some(other) if other != owner => Err(IdentityError::AlreadyExists(format!(
            "slug `{slug}` is taken by organization `{other}`"
        ))),
        _ => Ok(()),
    }
}

/// A free slug derived from `display_name`: itself, then `-2` … `-100`, then a random suffix.
fn free_slug(
    source: &(impl RecordSource + ?Sized),
    display_name: &str,
) -> Result<String, IdentityError> {
    let base = validate::slug_from(display_name, validate::MAX_SLUG_LEN);
    if load_id(source, ORG_SLUG, base.as_bytes())?.is_none() {
        return Ok(base);
    }
    let numbered = (2..=NUMBERED_SLUGS).map(|n| format!("-{n}"));
    let random = std::iter::once(format!("-{}", validate::new_id().replace('-', "")));
    for suffix in numbered.chain(random) {
        let stem = validate::slug_from(display_name, validate::MAX_SLUG_LEN - suffix.len());
        let candidate = format!("{stem}{suffix}");
        if load_id(source, ORG_SLUG, candidate.as_bytes())?.is_none() {
            return Ok(candidate);
        }
    }
    Err(IdentityError::AlreadyExists(format!(
        "no free slug derives from `{display_name}`; pass one"
    )))
}

/// Claims `domain` for `owner`; fails with `AlreadyExists` if another organization has it.
fn claim_domain(m: &mut Mutation<'_, '_>, domain: &str, owner: &str) -> Result<(), IdentityError> {
    if let Some(other) = load_id(m.txn(), ORG_DOMAIN, domain.as_bytes())? {
        if other != owner {
            return Err(IdentityError::AlreadyExists(format!(
                "domain `{domain}` is claimed by organization `{other}`"
            )));
        }
    }
    m.records()
        .put_record(ORG_DOMAIN, domain.as_bytes(), owner.as_bytes().to_vec())?;
    Ok(())
}

/// Branding with checked URLs.
fn checked_branding(branding: &Branding) -> Result<Branding, IdentityError> {
    Ok(Branding {
        logo_url: branding
            .logo_url
            .as_deref()
            .map(|u| validate::url("branding.logo_url", u))
            .transpose()?,
        login_url: branding
            .login_url
            .as_deref()
            .map(|u| validate::url("branding.login_url", u))
            .transpose()?,
    })
}

/// Checked, lowercased domains without repeats, in the order given.
fn checked_domains(domains: &[String]) -> Result<Vec<String>, IdentityError> {
    let mut out: Vec<String> = Vec::with_capacity(domains.len());
    for domain in domains {
        let domain = validate::domain(domain)?;
        if !out.contains(&domain) {
            out.push(domain);
        }
    }
    Ok(out)
}
