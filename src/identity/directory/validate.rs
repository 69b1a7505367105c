//! Checks of the directory's input fields (ids, names, slugs, domains, URLs, emails, TTLs)
//! and the making of new ids and slugs. Errors name the field and the value in backticks.

use std::time::Duration;

use crate::identity::IdentityError;
use crate::model::{ObjectRef, Timestamp};

/// Longest display name, reason or credential name, in characters.
const MAX_NAME_CHARS: usize = 256;
/// Longest slug (a DNS label's length, so a slug can become a subdomain).
pub(super) const MAX_SLUG_LEN: usize = 63;
/// Longest domain name (DNS).
const MAX_DOMAIN_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;
/// Longest URL or email address.
const MAX_URL_LEN: usize = 2048;
/// Longest external source or id.
const MAX_EXTERNAL_LEN: usize = 512;
/// Slug used when a display name has no letter or digit.
const FALLBACK_SLUG: &str = "org";

fn invalid(field: &str, value: &str, rule: &str) -> IdentityError {
    IdentityError::InvalidArgument(format!("invalid `{field}` `{value}`: {rule}"))
}

/// A new random id: a uuid v4 in its hyphenated form.
pub(super) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Fails unless `id` is a valid object id of `object_type` (SpiceDB's id syntax).
pub(super) fn object_id(field: &str, object_type: &str, id: &str) -> Result<(), IdentityError> {
    ObjectRef::new(object_type, id)
        .map(|_| ())
        .map_err(|e| invalid(field, id, e.rule))
}

/// A required human-readable text (display name, reason, credential name), trimmed.
pub(super) fn name(field: &str, value: &str) -> Result<String, IdentityError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(invalid(field, value, "it must not be blank"));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            field,
            value,
            "it must be at most 256 characters long",
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid(
            field,
            value,
            "it must not contain control characters",
        ));
    }
    Ok(trimmed.to_string())
}

/// A slug: 1 to 63 lowercase letters, digits and `-`, not starting or ending with `-`.
pub(super) fn slug(value: &str) -> Result<String, IdentityError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_SLUG_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(value.to_string())
    } else {
        Err(invalid(
            "slug",
            value,
            "slugs are 1 to 63 lowercase letters, digits and `-`, not starting or ending with `-`",
        ))
    }
}

/// The slug a display name suggests: lowercase letters and digits, every other run of
/// characters a single `-`, at most `max_len` long (at least 1); `org` when nothing is left.
pub(super) fn slug_from(display_name: &str, max_len: usize) -> String {
    let mut out = String::new();
    for c in display_name.chars() {
        if out.len() >= max_len.max(1) {
            break;
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        FALLBACK_SLUG.to_string()
    } else {
        out
    }
}

/// A domain name, lowercased: two or more DNS labels (letters, digits, `-`, not at either end
/// of a label), at most 253 characters.
pub(super) fn domain(value: &str) -> Result<String, IdentityError> {
    let lower = value.trim().to_ascii_lowercase();
    let labels_ok = lower.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if labels_ok && lower.len() <= MAX_DOMAIN_LEN && lower.contains('.') {
        Ok(lower)
    } else {
        Err(invalid(
            "domains",
            value,
            "a domain is two or more DNS labels of letters, digits and `-` (`acme.example`)",
        ))
    }
}

/// An `http(s)` URL without whitespace, at most 2048 characters.
pub(super) fn url(field: &str, value: &str) -> Result<String, IdentityError> {
    let ok = (value.starts_with("https://") || value.starts_with("http://"))
        && value.len() <= MAX_URL_LEN
        && value.len() > "https://".len()
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(value.to_string())
    } else {
        Err(invalid(
            field,
            value,
            "it must be an http(s) URL without spaces",
        ))
    }
}

/// An email address: `local@domain` without whitespace, trimmed.
pub(super) fn email(value: &str) -> Result<String, IdentityError> {
    let trimmed = value.trim();
    let ok = trimmed.len() <= MAX_URL_LEN
        && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
        && trimmed
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(invalid(
            "email",
            value,
            "it must be an address `name@domain`",
        ))
    }
}

/// An external source or id: 1 to 512 characters without control characters (byte 00
/// separates them in the index).
pub(super) fn external(field: &str, value: &str) -> Result<(), IdentityError> {
    if value.is_empty() || value.len() > MAX_EXTERNAL_LEN || value.chars().any(char::is_control) {
        Err(invalid(
            field,
            value,
            "it must be 1 to 512 characters without control characters",
        ))
    } else {
        Ok(())
    }
}

/// The expiry of something valid for `ttl` from `now`: `ttl` must be positive and at most
/// `max`.
pub(super) fn expiry(
    field: &str,
    ttl: Duration,
    max: Duration,
    now: Timestamp,
) -> Result<Timestamp, IdentityError> {
    let shown = format!("{}s", ttl.as_secs_f64());
    if ttl.is_zero() {
        return Err(invalid(field, &shown, "it must be positive"));
    }
    if ttl > max {
        return Err(invalid(
            field,
            &shown,
            &format!("it must be at most {}s", max.as_secs()),
        ));
    }
    let micros = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    Ok(Timestamp::from_micros(
        now.as_micros().saturating_add(micros),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_derive_from_display_names() {
        assert_eq!(slug_from("Acme Corp. (EMEA)", 63), "acme-corp-emea");
        assert_eq!(slug_from("  ***  ", 63), "org");
        assert_eq!(slug_from("abcdef", 3), "abc");
        assert!(slug("acme-emea").is_ok());
        assert!(slug("Acme").is_err());
        assert!(slug("-acme").is_err());
    }

    #[test]
    fn domains_are_lowercased_dns_names() {
        assert_eq!(domain("Acme.Example").unwrap(), "acme.example");
        assert!(domain("localhost").is_err());
        assert!(domain("a..b").is_err());
        assert!(domain("-a.b").is_err());
    }
}
