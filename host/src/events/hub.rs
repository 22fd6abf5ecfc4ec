//! The hub: one task per host follows the event log and broadcasts each new row to this host's
//! subscribers.
//!
//! It LISTENs on [`CHANNEL`] to wake up, but reads the log itself, in position order, from the
//! last position it broadcast: a lost notification, a dropped LISTEN connection or a database
//! restart costs at most one poll interval, never an event.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::db;
use crate::db::events::Event;

/// The notification channel the database signals new events on.
pub const CHANNEL: &str = "pacsync_events";
/// How often the hub polls even without notifications (a safety net for lost NOTIFYs).
const POLL: Duration = Duration::from_secs(1);
/// Rows read per catch-up query.
const BATCH: i64 = 500;

/// Fan-out of committed events to this host's subscribers.
#[derive(Clone)]
pub struct EventHub {
    sender: broadcast::Sender<Arc<Event>>,
    /// Position of the last event broadcast.
    delivered: Arc<AtomicI64>,
}

impl EventHub {
    /// A hub whose subscribers may fall `buffer` events behind before being cut off.
    pub fn new(buffer: usize) -> Self {
        let (sender, _) = broadcast::channel(buffer.max(1));
        Self {
            sender,
            delivered: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Subscribes, returning the receiver and the last position broadcast before it existed.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<Event>>, i64) {
        let receiver = self.sender.subscribe();
        (receiver, self.delivered.load(Ordering::SeqCst))
    }

    /// Follows the log until `shutdown`: LISTEN for wake-ups, read in position order, broadcast.
    /// Survives database restarts: it reconnects and catches up from the last position it sent.
    pub async fn run(self, db: PgPool, shutdown: CancellationToken) {
        let mut last = loop {
            match db::events::head(&db).await {
                Ok(head) => break head,
                Err(e) => {
                    tracing::warn!(error = %e, "event hub cannot read the log yet; retrying");
                    tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(POLL) => {} }
                }
            }
        };
        self.delivered.store(last, Ordering::SeqCst);
        let mut listener: Option<PgListener> = None;
        loop {
            if listener.is_none() {
                listener = listen(&db).await;
            }
            // Catch up on everything committed since `last`.
            match db::events::after(&db, last, BATCH).await {
                Ok(events) => {
                    let full = events.len() as i64 == BATCH;
                    for event in events {
                        last = event.position;
                        let _ = self.sender.send(Arc::new(event));
                        self.delivered.store(last, Ordering::SeqCst);
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "event hub cannot read the log; retrying"),
            }
            let wake = async {
                match listener.as_mut() {
                    Some(l) => match tokio::time::timeout(POLL, l.try_recv()).await {
                        Ok(Ok(Some(_))) | Err(_) => true,
                        // Connection lost: notifications in between are gone, the next read
                        // catches up from the log.
                        Ok(Ok(None)) => true,
                        Ok(Err(_)) => false,
                    },
                    None => {
                        tokio::time::sleep(POLL).await;
                        true
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                healthy = wake => if !healthy {
                    listener = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
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
