//! Content-addressed availability reports: what each endpoint can obtain.

use std::collections::HashMap;

use pacsync_core::{AvailabilityReport, Available, Source};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Makes a canonical report the endpoint's current one, storing it once under its content
/// address.
pub async fn record(
    db: impl PgExecutor<'_>,
    endpoint_id: Uuid,
    report: &AvailabilityReport,
) -> Result<()> {
    let offers = serde_json::to_value(&report.offered).map_err(Error::internal)?;
    sqlx::query("SELECT ps_endpoint_record_availability($1, $2, $3, $4)")
        .bind(endpoint_id)
        .bind(report.availability_id())
        .bind(&report.archive_repositories)
        .bind(offers)
        .execute(db)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct OfferRow {
    availability_id: String,
    name: String,
    version: String,
    source: String,
}

/// Loads reports by id, keeping only offers of the named packages (an analysis never needs the
/// thousands of others).
pub async fn load_many(
    conn: &mut PgConnection,
    availability_ids: &[String],
    names: &[String],
) -> Result<HashMap<String, AvailabilityReport>> {
    let sets: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT availability_id, archive_repositories FROM availability_sets
         WHERE availability_id = ANY($1)",
    )
    .bind(availability_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut reports: HashMap<String, AvailabilityReport> = sets
        .into_iter()
        .map(|(id, archive_repositories)| {
            (
                id,
                AvailabilityReport {
                    offered: Vec::new(),
                    archive_repositories,
                },
            )
        })
        .collect();
    let rows: Vec<OfferRow> = sqlx::query_as(
        "SELECT availability_id, name, version, source FROM availability_offers
         WHERE availability_id = ANY($1) AND name = ANY($2)",
    )
    .bind(availability_ids)
    .bind(names)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let source = Source::parse(&row.source).ok_or_else(|| {
            Error::internal(format!("unknown source {:?} in the database", row.source))
        })?;
        if let Some(report) = reports.get_mut(&row.availability_id) {
            report.offered.push(Available {
                name: row.name,
                version: row.version,
                source,
            });
        }
    }
    Ok(reports)
}

/// Deletes reports older than `min_age` that no live endpoint uses; returns how many.
pub async fn collect(db: impl PgExecutor<'_>, min_age: std::time::Duration) -> Result<i32> {
    let seconds = min_age.as_secs_f64();
    Ok(
        sqlx::query_scalar("SELECT ps_availability_collect(make_interval(secs => $1))")
            .bind(seconds)
            .fetch_one(db)
            .await?,
    )
}
