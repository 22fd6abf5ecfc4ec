//! Revoked admin tokens, held in memory by every replica so that admin requests add no query.
//!
//! Protocol: the host reads the ids of the revoked, unexpired admin tokens before it serves
//! ([`Revocations::load`]). Revoking a token notifies [`CHANNEL`] at commit with the token's
//! id (the `admin_tokens_revoke_only` trigger, `sql/V10__admin_tokens.sql`), and
//! [`Revocations::follow`], one task per replica, adds it: a revocation reaches every replica
//! within milliseconds. Ids only ever join the set between full reads, and a full read runs only
//! after LISTEN is in place, so a revocation is either in the read or notified after it.
//!
//! Failure modes: notifications sent while the LISTEN connection is down are lost, so after
//! every reconnect the whole set is read again; while LISTEN cannot be re-established the set
//! is read every [`RETRY`] instead. While the database is unreachable the set stays as it was
//! (no revocation can be made then either: revoking goes through the same database). Every
//! [`REFRESH`] the set is read again regardless, which also forgets tokens that have expired.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db;

/// The notification channel revocations are announced on; the payload is the token id.
pub const CHANNEL: &str = "pacsync_admin_tokens";
/// How often the set is read again even without notifications.
const REFRESH: Duration = Duration::from_secs(30);
/// How soon a failed LISTEN or read is tried again.
const RETRY: Duration = Duration::from_millis(200);

/// The ids of the revoked admin tokens that have not expired yet.
#[derive(Clone, Default)]
pub struct Revocations {
    revoked: Arc<RwLock<HashSet<Uuid>>>,
}

/// What woke the follower up.
enum Wake {
    /// A revocation; `None` when its payload is not a token id (then the set is read again).
    Revoked(Option<Uuid>),
    /// The LISTEN connection was lost and re-established: notifications may have been missed.
    Reconnected,
    /// The LISTEN connection failed and must be opened again.
    Lost,
    /// Nothing happened for a while.
    Quiet,
}

impl Revocations {
    /// Reads the current set from the database.
    pub async fn load(db: &PgPool) -> Result<Self, sqlx::Error> {
        let this = Self::default();
        this.replace(db::admin_tokens::revoked_ids(db).await?);
        Ok(this)
    }

    /// Whether the admin token with id `id` has been revoked.
    pub fn contains(&self, id: Uuid) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id)
    }

    /// Refuses the token with id `id` from now on, e.g. on the replica that just revoked it,
    /// before the notification comes back.
    pub fn insert(&self, id: Uuid) {
        self.revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }

    fn replace(&self, ids: Vec<Uuid>) {
        *self.revoked.write().unwrap_or_else(PoisonError::into_inner) = ids.into_iter().collect();
    }

    /// Keeps the set current until `shutdown`: LISTEN for revocations, read the whole set again
    /// after every reconnect and every [`REFRESH`].
    pub async fn follow(self, db: PgPool, shutdown: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        // When the set was last read completely; `None`: it must be read now.
        let mut read_at: Option<Instant> = None;
        let mut healthy = true;
        loop {
            if listener.is_none() {
                listener = listen(&db).await;
                read_at = None;
            }
            if read_at.is_none_or(|at| at.elapsed() >= REFRESH) {
                match db::admin_tokens::revoked_ids(&db).await {
                    Ok(ids) => {
                        self.replace(ids);
                        read_at = Some(Instant::now());
                        if !healthy {
                            tracing::info!("revoked admin tokens are followed again");
                            healthy = true;
                        }
                    }
                    Err(e) => {
                        read_at = None;
                        if healthy {
                            tracing::warn!(error = %e, "cannot read the revoked admin tokens; retrying");
                            healthy = false;
                        }
                    }
                }
            }
            let wait = match read_at {
                Some(at) => REFRESH.saturating_sub(at.elapsed()),
                None => RETRY,
            };
            let wake = async {
                match listener.as_mut() {
                    Some(l) => match tokio::time::timeout(wait, l.try_recv()).await {
                        Ok(Ok(Some(notification))) => {
                            Wake::Revoked(notification.payload().parse().ok())
                        }
                        Ok(Ok(None)) => Wake::Reconnected,
                        Ok(Err(_)) => Wake::Lost,
                        Err(_) => Wake::Quiet,
                    },
                    None => {
                        tokio::time::sleep(RETRY).await;
                        Wake::Quiet
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                wake = wake => match wake {
                    Wake::Revoked(Some(id)) => self.insert(id),
                    Wake::Revoked(None) | Wake::Reconnected => read_at = None,
                    Wake::Lost => {
                        listener = None;
                        tokio::time::sleep(RETRY).await;
                    }
                    Wake::Quiet => {}
                },
            }
        }
    }
}

async fn listen(db: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(db).await.ok()?;
    listener.listen(CHANNEL).await.ok()?;
    Some(listener)
}
