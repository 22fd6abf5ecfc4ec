//! Revoked admin tokens, held in memory by every replica so that admin requests add no query.
//!
//! Protocol: the host reads the ids of the revoked, unexpired admin tokens before it serves
//! ([`Revocations::load`]). Revoking a token notifies [`CHANNEL`] at commit with the token's
//! id (the `admin_tokens_revoke_only` trigger, `sql/V9__admin_tokens.sql`), and
//! [`Revocations::follow`], one task per replica, adds it: a revocation reaches every replica
//! within milliseconds. Ids only ever join the set between full reads, and a full read runs only
//! after LISTEN is in place, so a revocation is either in the read or notified after it.
//!
//! The LISTEN connection is owned by a task of its own ([`listen`]) that waits for
//! notifications and is never interrupted: a wait cut short by a timeout could be cut in the
//! middle of sqlx's reconnect, and the news that notifications were lost with the connection
//! would be lost with it. The task forwards each notification, and [`Signal::Listening`] each time
//! LISTEN is (again) in place, which is when the follower reads the whole set again.
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
use tokio::sync::mpsc::{self, UnboundedSender};
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
    revoked: Arc<RwLock<Revoked>>,
}

#[derive(Default)]
struct Revoked {
    ids: HashSet<Uuid>,
    /// Ids inserted here, with when: a read that began before one was inserted may not hold
    /// it yet, and must not drop it.
    inserted: Vec<(Uuid, Instant)>,
}

/// What the LISTEN task tells the follower.
enum Signal {
    /// LISTEN is in place (again): anything notified before may have been missed.
    Listening,
    /// A revocation; `None` when its payload is not a token id (then the set is read again).
    Revoked(Option<Uuid>),
    /// The LISTEN connection failed; until the next [`Signal::Listening`], nothing is notified.
    Lost,
}

impl Revocations {
    /// Reads the current set from the database.
    pub async fn load(db: &PgPool) -> Result<Self, sqlx::Error> {
        let this = Self::default();
        let began = Instant::now();
        this.replace(db::admin_tokens::revoked_ids(db).await?, began);
        Ok(this)
    }

    /// Whether the admin token with id `id` has been revoked.
    pub fn contains(&self, id: Uuid) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .ids
            .contains(&id)
    }

    /// Refuses the token with id `id` from now on, e.g. on the replica that just revoked it,
    /// before the notification comes back.
    pub fn insert(&self, id: Uuid) {
        let mut revoked = self.revoked.write().unwrap_or_else(PoisonError::into_inner);
        revoked.ids.insert(id);
        revoked.inserted.push((id, Instant::now()));
    }

    /// Takes `ids`, read by a query that began at `began`, as the set, keeping what was
    /// inserted here since (that read's snapshot may predate the revocation's commit).
    fn replace(&self, ids: Vec<Uuid>, began: Instant) {
        let mut revoked = self.revoked.write().unwrap_or_else(PoisonError::into_inner);
        revoked.inserted.retain(|&(_, at)| at >= began);
        let mut set: HashSet<Uuid> = ids.into_iter().collect();
        set.extend(revoked.inserted.iter().map(|&(id, _)| id));
        revoked.ids = set;
    }

    /// Keeps the set current until `shutdown`: LISTEN for revocations, read the whole set again
    /// each time LISTEN is (re-)established and every [`REFRESH`] (every [`RETRY`] while it is
    /// not).
    pub async fn follow(self, db: PgPool, shutdown: CancellationToken) {
        let (sender, mut signals) = mpsc::unbounded_channel();
        tokio::spawn(listen(db.clone(), sender, shutdown.clone()));
        let mut listening = false;
        // When the set was last read completely; `None`: it must be read now.
        let mut read_at: Option<Instant> = None;
        let mut healthy = true;
        loop {
            // Without LISTEN, nothing announces a revocation: reading often is all there is.
            let every = if listening { REFRESH } else { RETRY };
            if read_at.is_none_or(|at| at.elapsed() >= every) {
                let began = Instant::now();
                match db::admin_tokens::revoked_ids(&db).await {
                    Ok(ids) => {
                        self.replace(ids, began);
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
                Some(at) => every.saturating_sub(at.elapsed()),
                None => RETRY,
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                signal = signals.recv() => match signal {
                    Some(Signal::Revoked(Some(id))) => self.insert(id),
                    Some(Signal::Revoked(None)) => read_at = None,
                    Some(Signal::Listening) => {
                        listening = true;
                        read_at = None;
                    }
                    Some(Signal::Lost) => listening = false,
                    // The task ends only at shutdown.
                    None => return,
                },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Holds a LISTEN connection on [`CHANNEL`] until `shutdown` (or until the follower is gone),
/// opening it again whenever it fails, and tells `signals` what it hears.
async fn listen(db: PgPool, signals: UnboundedSender<Signal>, shutdown: CancellationToken) {
    loop {
        let listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            listener = connect(&db) => listener,
        };
        if let Some(mut listener) = listener {
            // Eager reconnect (sqlx's default, set here because the protocol depends on it): a
            // lost connection is opened again, LISTEN included, before `try_recv` says `None`.
            listener.eager_reconnect(true);
            if signals.send(Signal::Listening).is_err() {
                return;
            }
            loop {
                let received = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    () = signals.closed() => return,
                    received = listener.try_recv() => received,
                };
                let signal = match received {
                    Ok(Some(notification)) => Signal::Revoked(notification.payload().parse().ok()),
                    // Reconnected and LISTENing again; what was notified in between is lost.
                    Ok(None) => Signal::Listening,
                    // Reconnecting failed, or the connection broke otherwise: start over.
                    Err(_) => break,
                };
                if signals.send(signal).is_err() {
                    return;
                }
            }
        }
        if signals.send(Signal::Lost).is_err() {
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

async fn connect(db: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(db).await.ok()?;
    listener.listen(CHANNEL).await.ok()?;
    Some(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_read_that_began_before_a_local_revocation_does_not_drop_it() {
        let revocations = Revocations::default();
        let (old, expired, fresh) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        revocations.insert(expired);
        std::thread::sleep(Duration::from_millis(2));
        let began = Instant::now();
        // Revoked here while the read runs; its snapshot predates the revocation's commit.
        revocations.insert(fresh);
        revocations.replace(vec![old], began);
        assert!(revocations.contains(old));
        assert!(
            revocations.contains(fresh),
            "the revocation in flight stays"
        );
        // The read began after `expired` was inserted, and no longer lists it: it expired.
        assert!(!revocations.contains(expired));
        // A later read that lists `fresh` no longer needs the local record of it.
        revocations.replace(vec![old, fresh], Instant::now());
        assert!(revocations.contains(fresh));
    }
}
