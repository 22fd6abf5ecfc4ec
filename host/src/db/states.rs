//! Content-addressed package states, and their collection once nothing needs them (see
//! `sql/V10__state_retention.sql` for what keeps a state).

use std::collections::HashMap;
use std::time::Duration;

use pacsync_core::{InstallReason, Package, PackageState};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{Error, Result};

#[derive(sqlx::FromRow)]
struct PackageRow {
    state_id: String,
    // NULL for the single row of a state with no packages (LEFT JOIN).
    name: Option<String>,
    version: Option<String>,
    repository: Option<String>,
    architecture: Option<String>,
    reason: Option<String>,
}

impl PackageRow {
    fn into_package(self) -> Result<Option<Package>> {
        let (Some(name), Some(version), Some(reason)) = (self.name, self.version, self.reason)
        else {
            return Ok(None);
        };
        let reason = InstallReason::parse(&reason).ok_or_else(|| {
            Error::internal(format!("unknown install reason {reason:?} in the database"))
        })?;
        Ok(Some(Package {
            name,
            version,
            repository: self.repository,
            architecture: self.architecture,
            reason,
        }))
    }
}

/// Stores a state once under its content address and returns that address.
pub async fn store(db: impl PgExecutor<'_>, state: &PackageState) -> Result<String> {
    let state_id = state.state_id();
    // Serialized straight into the query's buffer: no intermediate JSON tree of the list.
    sqlx::query("SELECT ps_store_state($1, $2)")
        .bind(&state_id)
        .bind(sqlx::types::Json(Stored(state)))
        .execute(db)
        .await?;
    Ok(state_id)
}

/// A state's packages as `ps_store_state` reads them, every field present (`null` when absent).
struct Stored<'a>(&'a PackageState);

/// One package of [`Stored`].
#[derive(serde::Serialize)]
struct StoredPackage<'a> {
    name: &'a str,
    version: &'a str,
    repository: Option<&'a str>,
    architecture: Option<&'a str>,
    reason: &'a InstallReason,
}

impl serde::Serialize for Stored<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|p| StoredPackage {
            name: &p.name,
            version: &p.version,
            repository: p.repository.as_deref(),
            architecture: p.architecture.as_deref(),
            reason: &p.reason,
        }))
    }
}

/// Loads one state, or `None` if no such state is stored.
pub async fn load(db: impl PgExecutor<'_>, state_id: &str) -> Result<Option<PackageState>> {
    let mut states = load_many(db, &[state_id.to_owned()], None).await?;
    Ok(states.remove(state_id))
}

/// Loads a state that must exist: a missing one is a broken reference, an internal error.
pub async fn load_required(
    db: impl PgExecutor<'_>,
    state_id: &str,
) -> Result<std::sync::Arc<PackageState>> {
    load(db, state_id)
        .await?
        .map(std::sync::Arc::new)
        .ok_or_else(|| {
            crate::error::Error::internal(format!("state {state_id} is referenced but not stored"))
        })
}

/// Loads several states in one query; with `names`, only those packages of each.
pub async fn load_many(
    db: impl PgExecutor<'_>,
    state_ids: &[String],
    names: Option<&[String]>,
) -> Result<HashMap<String, PackageState>> {
    let rows: Vec<PackageRow> = sqlx::query_as(
        "SELECT s.state_id, p.name, p.version, p.repository, p.architecture, p.reason
         FROM package_states s LEFT JOIN state_packages p
              ON p.state_id = s.state_id AND ($2::text[] IS NULL OR p.name = ANY($2))
         WHERE s.state_id = ANY($1) ORDER BY s.state_id, p.name",
    )
    .bind(state_ids)
    .bind(names)
    .fetch_all(db)
    .await?;
    let mut grouped: HashMap<String, Vec<Package>> = HashMap::new();
    for row in rows {
        let packages = grouped.entry(row.state_id.clone()).or_default();
        packages.extend(row.into_package()?);
    }
    grouped
        .into_iter()
        .map(|(id, packages)| {
            PackageState::new(packages)
                .map(|state| (id, state))
                .map_err(|e| Error::internal(format!("stored state is invalid: {e}")))
        })
        .collect()
}

/// Takes the state collector's session advisory lock (class 3, object 3) on `conn`, if no other
/// replica holds it. It lasts as long as the session: close the connection to release it.
pub async fn try_lock_collector(conn: &mut PgConnection) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock(3, 3)")
        .fetch_one(conn)
        .await?)
}

/// Drops the unneeded history entries older than `retention` of up to `batch` endpoints after
/// `after` (`ps_history_collect`): the last endpoint looked at (`None`: the pass is complete)
/// and how many entries went.
pub async fn collect_history(
    db: impl PgExecutor<'_>,
    retention: Duration,
    after: Option<Uuid>,
    batch: i32,
) -> Result<(Option<Uuid>, i32)> {
    Ok(sqlx::query_as(
        "SELECT last_endpoint, deleted
         FROM ps_history_collect(make_interval(secs => $1), $2, $3)",
    )
    .bind(retention.as_secs_f64())
    .bind(after)
    .bind(batch)
    .fetch_one(db)
    .await?)
}

/// Deletes up to `batch` states older than `retention` that nothing refers to
/// (`ps_states_collect`); returns how many (fewer than `batch` ends a round).
pub async fn collect(db: impl PgExecutor<'_>, retention: Duration, batch: i32) -> Result<i32> {
    Ok(
        sqlx::query_scalar("SELECT ps_states_collect(make_interval(secs => $1), $2)")
            .bind(retention.as_secs_f64())
            .bind(batch)
            .fetch_one(db)
            .await?,
    )
}
