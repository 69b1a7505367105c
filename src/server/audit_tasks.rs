//! The server's audit housekeeping: after every commit it signs the new head of the audit chain
//! and writes it to the anchor file outside the data directory (and logs it on target
//! `arbor::audit::anchor`, so a log shipper keeps a second copy); when a retention is set, it
//! prunes entries older than that once per interval.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::identity::IdentityError;
use crate::identity::audit::anchor::{Anchor, AnchorKey, AnchorPublicKey, write_anchor_file};
use crate::identity::audit::{self, ChainHead};
use crate::model::Timestamp;
use crate::store::Datastore;

/// The anchor file and the key that signs it.
pub struct Anchoring {
    file: PathBuf,
    key: AnchorKey,
}

impl Anchoring {
    /// Reads the secret key; the anchor file is written on the first commit.
    pub fn load(file: &Path, key_file: &Path) -> Result<Anchoring, IdentityError> {
        Ok(Anchoring {
            file: file.to_path_buf(),
            key: AnchorKey::from_file(key_file)?,
        })
    }

    /// The anchor file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The public key that checks this signer's anchors.
    pub fn public_key(&self) -> AnchorPublicKey {
        self.key.public_key()
    }

    /// Signs `head` and writes it to the anchor file.
    fn write(&self, head: &ChainHead) -> Result<Anchor, IdentityError> {
        let anchor = Anchor::sign(&self.key, head, Timestamp::now());
        write_anchor_file(&self.file, &anchor)?;
        Ok(anchor)
    }
}

/// Anchors each new chain head and prunes by retention until `stop` turns true.
pub async fn run(
    datastore: Arc<dyn Datastore>,
    anchoring: Option<Anchoring>,
    retention: Option<Duration>,
    prune_interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut heads = datastore.subscribe();
    let mut anchored: Option<ChainHead> = None;
    let anchoring = anchoring.map(Arc::new);
    let mut prune_tick = tokio::time::interval(prune_interval);
    loop {
        if let Some(a) = &anchoring {
            anchored = anchor_head(&datastore, a, anchored).await;
        }
        tokio::select! {
            changed = heads.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = prune_tick.tick() => {
                if let Some(keep) = retention {
                    prune(&datastore, keep).await;
                }
            }
            _ = stop.changed() => {
                if let Some(a) = &anchoring {
                    anchor_head(&datastore, a, anchored).await;
                }
                return;
            }
        }
    }
}

/// Writes an anchor for the current chain head if it moved since `last`.
async fn anchor_head(
    datastore: &Arc<dyn Datastore>,
    anchoring: &Arc<Anchoring>,
    last: Option<ChainHead>,
) -> Option<ChainHead> {
    let store = Arc::clone(datastore);
    let signer = Arc::clone(anchoring);
    let done = tokio::task::spawn_blocking(move || -> Result<Option<Anchor>, IdentityError> {
        match audit::head(store.as_ref())? {
            Some(head) if Some(head) != last => signer.write(&head).map(Some),
            _ => Ok(None),
        }
    })
    .await;
    match done {
        Ok(Ok(Some(anchor))) => {
            tracing::info!(target: "arbor::audit::anchor", anchor = %anchor.to_line(), "audit chain anchored");
            Some(anchor.head())
        }
        Ok(Ok(None)) => last,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "anchoring the audit chain failed");
            last
        }
        Err(e) => {
            tracing::error!(error = %e, "anchoring the audit chain failed");
            last
        }
    }
}

async fn prune(datastore: &Arc<dyn Datastore>, keep: Duration) {
    let store = Arc::clone(datastore);
    let keep_micros = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
    let before = Timestamp::from_micros(Timestamp::now().as_micros().saturating_sub(keep_micros));
    match tokio::task::spawn_blocking(move || audit::prune(store.as_ref(), before)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(removed = n, "audit entries past retention pruned"),
        Ok(Err(e)) => tracing::error!(error = %e, "pruning the audit log failed"),
        Err(e) => tracing::error!(error = %e, "pruning the audit log failed"),
    }
}
