//! A resuming subscriber's backlog, `(after, head]` of the log, read a page at a time.
//!
//! However long the log, a session holds one page of rows: it reads a page, sends it, then
//! reads the next after the last position it read. The range ends at the session's `head`, so
//! the pages and the live stream after them still meet without a gap or a duplicate.

use sqlx::PgPool;
use uuid::Uuid;

use super::{Scope, moved_from};
use crate::db;
use crate::db::events::Event;

/// The rest of one subscriber's backlog.
pub(super) struct Backlog {
    /// The scope as it was at the position read up to (an endpoint's pool follows its moves).
    walk: Scope,
    /// For an endpoint: every pool it was in within the range, whose target changes the pages
    /// read (the walk keeps each one's while the endpoint was in it).
    pools: Vec<Uuid>,
    /// Every event up to here has been read.
    read_to: i64,
    head: i64,
    page: i64,
    done: bool,
}

impl Backlog {
    /// The backlog `(after, head]` of `scope`, read `page` rows at a time.
    pub(super) async fn start(
        db: &PgPool,
        scope: Scope,
        after: i64,
        head: i64,
        page: u32,
    ) -> Result<Self, sqlx::Error> {
        // The endpoint may have changed pools within the range: start from the pool it was in
        // at `after` (the one its first move left), and walk its moves from there.
        let (walk, pools) = match scope {
            Scope::Endpoint {
                endpoint_id,
                pool_id,
            } => {
                let moves = db::events::moves(db, endpoint_id, (after, head)).await?;
                let start = moves.first().and_then(moved_from).unwrap_or(pool_id);
                let mut pools = vec![start];
                pools.extend(moves.iter().filter_map(|moved| moved.pool_id));
                pools.sort_unstable();
                pools.dedup();
                let walk = Scope::Endpoint {
                    endpoint_id,
                    pool_id: start,
                };
                (walk, pools)
            }
            pool @ Scope::Pool { .. } => (pool, Vec::new()),
        };
        Ok(Self {
            walk,
            pools,
            read_to: after,
            head,
            page: i64::from(page.max(1)),
            done: after >= head,
        })
    }

    /// Where the subscriber can resume from if the backlog breaks off: every event up to here
    /// has been handed out.
    pub(super) fn read_to(&self) -> i64 {
        self.read_to
    }

    /// The scope's events of the next page, in position order (possibly none, when a page held
    /// only target changes of a pool while the endpoint was elsewhere); `None` once the backlog
    /// is exhausted.
    pub(super) async fn next_page(
        &mut self,
        db: &PgPool,
    ) -> Result<Option<Vec<Event>>, sqlx::Error> {
        if self.done {
            return Ok(None);
        }
        let range = (self.read_to, self.head);
        let rows = match self.walk {
            Scope::Pool { pool_id } => db::events::of_pool(db, pool_id, range, self.page).await?,
            Scope::Endpoint { endpoint_id, .. } => {
                db::events::of_endpoint(db, endpoint_id, &self.pools, range, self.page).await?
            }
        };
        self.done = (rows.len() as i64) < self.page;
        match rows.last() {
            Some(last) => self.read_to = last.position,
            None => return Ok(None),
        }
        let wanted = match self.walk {
            // The query already selects exactly the pool's events.
            Scope::Pool { .. } => rows,
            // Keep the endpoint's own events and the target changes of the pool it was in at
            // each point.
            Scope::Endpoint { .. } => rows
                .into_iter()
                .filter(|event| {
                    let wanted = self.walk.matches(event);
                    self.walk.follow(event);
                    wanted
                })
                .collect(),
        };
        Ok(Some(wanted))
    }
}
