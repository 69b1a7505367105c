//! Anchors: the chain head written outside the data directory and signed with an Ed25519 key
//! kept apart from it, so that truncating the log or recomputing the whole chain is caught by
//! `verify`. Also the key files and the anchor file.
//!
//! Key files are one text line each (a trailing newline is allowed):
//!
//! ```text
//! arbor-audit-key v1 ed25519-secret <64 hex digits: the 32-byte Ed25519 seed>    (PREFIX.key, mode 0600)
//! arbor-audit-key v1 ed25519-public <64 hex digits: the 32-byte public key>      (PREFIX.pub)
//! ```
//!
//! The server signs with the secret key; `arbor audit verify` checks with the public key.
//! An anchor file holds one line:
//!
//! ```text
//! arbor-audit-anchor v1 seq=<u64> hash=<64 hex> time=<RFC 3339> sig=<128 hex>
//! ```
//!
//! The signature is Ed25519 over `"arbor-audit-anchor v1\0"`, then seq (u64 big-endian), the
//! 32 hash bytes, and time (i64 microseconds since the epoch, big-endian).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::identity::IdentityError;
use crate::model::Timestamp;

use super::ChainHead;
use super::codec::{hex, parse_hex};

/// First words of a key file line.
const KEY_MAGIC: &str = "arbor-audit-key v1";
/// Kind word of a secret key file.
const SECRET_KIND: &str = "ed25519-secret";
/// Kind word of a public key file.
const PUBLIC_KIND: &str = "ed25519-public";
/// First words of an anchor line.
const ANCHOR_MAGIC: &str = "arbor-audit-anchor v1";
/// The first bytes of the signed message.
const SIGN_DOMAIN: &[u8] = b"arbor-audit-anchor v1\0";

fn bad_file(path: &Path, detail: impl std::fmt::Display) -> IdentityError {
    IdentityError::InvalidArgument(format!("`{}`: {detail}", path.display()))
}

fn read_text(path: &Path) -> Result<String, IdentityError> {
    fs::read_to_string(path).map_err(|e| bad_file(path, format_args!("cannot read: {e}")))
}

/// Parses `arbor-audit-key v1 <kind> <hex>` into the 32 key bytes.
fn parse_key_line(text: &str, kind: &str) -> Result<[u8; 32], IdentityError> {
    let line = text.trim();
    let rest = line
        .strip_prefix(KEY_MAGIC)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| {
            IdentityError::InvalidArgument(format!(
                "not an arbor audit key (expected `{KEY_MAGIC} {kind} <hex>`)"
            ))
        })?;
    let (found_kind, digits) = rest.split_once(' ').unwrap_or((rest, ""));
    if found_kind != kind {
        return Err(IdentityError::InvalidArgument(format!(
            "expected an `{kind}` key, found `{found_kind}`"
        )));
    }
    parse_hex::<32>(digits.trim()).ok_or_else(|| {
        IdentityError::InvalidArgument(format!("the `{kind}` key is not 64 hex digits"))
    })
}

/// The secret key that signs anchors. Its `Debug` does not show the key.
pub struct AnchorKey(SigningKey);

impl std::fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorKey")
            .field("public", &hex(self.0.verifying_key().as_bytes()))
            .finish_non_exhaustive()
    }
}

impl AnchorKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| {
            IdentityError::FailedPrecondition(format!("no randomness for a new key: {e}"))
        })?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(AnchorKey(key))
    }

    /// Parses the text of a secret key file (see the module doc).
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let mut seed = parse_key_line(text, SECRET_KIND)?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(AnchorKey(key))
    }

    /// Reads a secret key file.
    pub fn from_file(path: &Path) -> Result<Self, IdentityError> {
        Self::parse(&read_text(path)?).map_err(|e| bad_file(path, e))
    }

    /// The text of its secret key file, newline included. Keep it secret.
    pub fn to_file_text(&self) -> String {
        format!("{KEY_MAGIC} {SECRET_KIND} {}\n", hex(&self.0.to_bytes()))
    }

    /// Its public key, which checks its signatures.
    pub fn public_key(&self) -> AnchorPublicKey {
        AnchorPublicKey(self.0.verifying_key())
    }
}

/// The public key that checks anchor signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorPublicKey(VerifyingKey);

impl AnchorPublicKey {
    /// Parses the text of a public key file (see the module doc).
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let bytes = parse_key_line(text, PUBLIC_KIND)?;
        VerifyingKey::from_bytes(&bytes)
            .map(AnchorPublicKey)
            .map_err(|_| IdentityError::InvalidArgument("not a valid Ed25519 public key".into()))
    }

    /// Reads a public key file.
    pub fn from_file(path: &Path) -> Result<Self, IdentityError> {
        Self::parse(&read_text(path)?).map_err(|e| bad_file(path, e))
    }

    /// The text of its public key file, newline included.
    pub fn to_file_text(&self) -> String {
        format!("{KEY_MAGIC} {PUBLIC_KIND} {}\n", hex(self.0.as_bytes()))
    }
}

/// Writes a new key pair as `PREFIX.key` (secret, owner-only permissions on Unix) and
/// `PREFIX.pub`; refuses to overwrite either. Returns both paths.
pub fn write_key_files(
    key: &AnchorKey,
    prefix: &Path,
) -> Result<(PathBuf, PathBuf), IdentityError> {
    let with_ext = |ext: &str| {
        let mut name = prefix.as_os_str().to_os_string();
        name.push(ext);
        PathBuf::from(name)
    };
    let (secret_path, public_path) = (with_ext(".key"), with_ext(".pub"));
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(bad_file(path, "exists already; not overwritten"));
        }
    }
    let write_new = |path: &Path, text: &str, private: bool| -> Result<(), IdentityError> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut file = options
            .open(path)
            .map_err(|e| bad_file(path, format_args!("cannot create: {e}")))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| bad_file(path, format_args!("cannot write: {e}")))
    };
    write_new(&secret_path, &key.to_file_text(), true)?;
    write_new(&public_path, &key.public_key().to_file_text(), false)?;
    Ok((secret_path, public_path))
}

/// A signed statement that the chain had entry `seq` with hash `hash` at `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The anchored entry's seq.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
    /// When the anchor was made.
    pub time: Timestamp,
    /// Ed25519 signature over the message in the module doc.
    pub signature: [u8; 64],
}

fn signed_message(seq: u64, hash: &[u8; 32], time: Timestamp) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGN_DOMAIN.len() + 48);
    msg.extend_from_slice(SIGN_DOMAIN);
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend_from_slice(hash);
    msg.extend_from_slice(&time.as_micros().to_be_bytes());
    msg
}

impl Anchor {
    /// Anchors `head` at `time`, signed with `key`.
    pub fn sign(key: &AnchorKey, head: &ChainHead, time: Timestamp) -> Anchor {
        let signature = key.0.sign(&signed_message(head.seq, &head.hash, time));
        Anchor {
            seq: head.seq,
            hash: head.hash,
            time,
            signature: signature.to_bytes(),
        }
    }

    /// The anchored point of the chain.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }

    /// Fails with `AuditBroken` unless the signature was made by `key`'s secret over this
    /// anchor's seq, hash and time.
    pub fn check_signature(&self, key: &AnchorPublicKey) -> Result<(), IdentityError> {
        let signature = Signature::from_bytes(&self.signature);
        key.0
            .verify_strict(&signed_message(self.seq, &self.hash, self.time), &signature)
            .map_err(|_| {
                IdentityError::AuditBroken(format!(
                    "the anchor at seq {} is not signed by the given key (altered or forged)",
                    self.seq
                ))
            })
    }

    /// The anchor as one line, without newline (see the module doc).
    pub fn to_line(&self) -> String {
        format!(
            "{ANCHOR_MAGIC} seq={} hash={} time={} sig={}",
            self.seq,
            hex(&self.hash),
            self.time.to_rfc3339(),
            hex(&self.signature)
        )
    }

    /// Parses what `to_line` writes (surrounding whitespace allowed). Does not check the
    /// signature.
    pub fn parse_line(line: &str) -> Result<Anchor, IdentityError> {
        let bad = |detail: &str| {
            IdentityError::InvalidArgument(format!("malformed audit anchor: {detail}"))
        };
        let rest = line
            .trim()
            .strip_prefix(ANCHOR_MAGIC)
            .ok_or_else(|| bad(&format!("expected it to start with `{ANCHOR_MAGIC}`")))?;
        let (mut seq, mut hash, mut time, mut sig) = (None, None, None, None);
        for field in rest.split_ascii_whitespace() {
            let (name, value) = field
                .split_once('=')
                .ok_or_else(|| bad(&format!("`{field}` is not name=value")))?;
            let slot = match name {
                "seq" => &mut seq,
                "hash" => &mut hash,
                "time" => &mut time,
                "sig" => &mut sig,
                other => return Err(bad(&format!("unknown field `{other}`"))),
            };
            if slot.replace(value).is_some() {
                return Err(bad(&format!("field `{name}` appears twice")));
            }
        }
        let seq = seq
            .ok_or_else(|| bad("no `seq`"))?
            .parse::<u64>()
            .map_err(|_| bad("`seq` is not a number"))?;
        let hash = parse_hex::<32>(hash.ok_or_else(|| bad("no `hash`"))?)
            .ok_or_else(|| bad("`hash` is not 64 hex digits"))?;
        let time = Timestamp::parse_rfc3339(time.ok_or_else(|| bad("no `time`"))?)
            .map_err(|_| bad("`time` is not RFC 3339"))?;
        let signature = parse_hex::<64>(sig.ok_or_else(|| bad("no `sig`"))?)
            .ok_or_else(|| bad("`sig` is not 128 hex digits"))?;
        Ok(Anchor {
            seq,
            hash,
            time,
            signature,
        })
    }
}

/// Writes `anchor` to `path` atomically: a temporary file beside it, synced, then renamed
/// over it.
pub fn write_anchor_file(path: &Path, anchor: &Anchor) -> Result<(), IdentityError> {
    let fail = |e: std::io::Error| {
        IdentityError::FailedPrecondition(format!(
            "cannot write the anchor file `{}`: {e}",
            path.display()
        ))
    };
    let mut tmp_name = path.as_os_str().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let written = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(anchor.to_line().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail(e));
    }
    // Make the rename durable; a directory that cannot be opened or synced is not fatal.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads the anchor in an anchor file (its first non-empty line).
pub fn read_anchor_file(path: &Path) -> Result<Anchor, IdentityError> {
    let text = read_text(path)?;
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| bad_file(path, "the anchor file is empty"))?;
    Anchor::parse_line(line).map_err(|e| bad_file(path, e))
}
