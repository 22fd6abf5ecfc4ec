//! Listing operations newest first, one page at a time, with opaque keyset cursors.
//!
//! A cursor is the `(created_at, operation_id)` of the last row of a page, base64-encoded; the
//! next page is every row strictly older in that order, so pages never repeat or skip a row
//! however many operations are created meanwhile. A cursor this API did not produce is refused
//! with `INVALID_CURSOR`.

use base64::Engine;
use chrono::{DateTime, Utc};
use pacsync_core::{Operation, OperationPage, OperationStatus, OperationType};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db;
use crate::db::operations::{Cursor, ListFilter, OperationRow};
use crate::error::{Error, ErrorCode, Result};

/// Validated listing parameters.
pub struct ListQuery {
    /// Page size.
    pub limit: i64,
    /// Position.
    pub cursor: Option<String>,
    /// Status filter.
    pub status: Option<OperationStatus>,
    /// Type filter.
    pub operation_type: Option<OperationType>,
}

/// The scope of a listing.
pub enum Scope {
    /// One endpoint's operations.
    Endpoint(Uuid),
    /// One pool's operations.
    Pool(Uuid),
}

fn encode_cursor(row: &OperationRow) -> String {
    let raw = format!(
        "{}|{}",
        row.created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        row.operation_id
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str) -> Result<Cursor> {
    let invalid = || {
        Error::new(
            ErrorCode::InvalidCursor,
            "cursor was not produced by this API",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (at, id) = raw.split_once('|').ok_or_else(invalid)?;
    Ok(Cursor {
        created_at: DateTime::parse_from_rfc3339(at)
            .map_err(|_| invalid())?
            .with_timezone(&Utc),
        operation_id: id.parse().map_err(|_| invalid())?,
    })
}

/// One of `words`, or `INVALID_QUERY` naming them all.
fn parse_filter<T: Copy>(
    field: &str,
    value: Option<&str>,
    all: &[T],
    spell: fn(T) -> &'static str,
) -> Result<Option<T>> {
    let Some(value) = value else {
        return Ok(None);
    };
    all.iter()
        .copied()
        .find(|candidate| spell(*candidate) == value)
        .map(Some)
        .ok_or_else(|| {
            let words: Vec<&str> = all.iter().map(|c| spell(*c)).collect();
            Error::new(
                ErrorCode::InvalidQuery,
                format!("{field} must be one of {}", words.join(", ")),
            )
        })
}

/// Validates raw listing parameters.
pub fn list_query(
    limit: Option<i64>,
    cursor: Option<String>,
    status: Option<String>,
    operation_type: Option<String>,
) -> Result<ListQuery> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::new(
            ErrorCode::InvalidQuery,
            "limit must be between 1 and 200",
        ));
    }
    Ok(ListQuery {
        limit,
        cursor,
        status: parse_filter(
            "status",
            status.as_deref(),
            OperationStatus::ALL,
            OperationStatus::as_str,
        )?,
        operation_type: parse_filter(
            "type",
            operation_type.as_deref(),
            OperationType::ALL,
            OperationType::as_str,
        )?,
    })
}

/// Lists operations newest first, one page at a time.
pub async fn list(
    db: &PgPool,
    principal: &Principal,
    scope: Scope,
    query: ListQuery,
) -> Result<OperationPage> {
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let (endpoint_id, pool_id) = match scope {
        Scope::Endpoint(id) => {
            principal.require_admin_or_endpoint(id)?;
            crate::endpoints::get(db, id).await?;
            (Some(id), None)
        }
        Scope::Pool(id) => {
            principal.require_admin()?;
            crate::pools::get(db, id).await?;
            (None, Some(id))
        }
    };
    let mut rows = db::operations::list(
        db,
        ListFilter {
            endpoint_id,
            pool_id,
            status: query.status,
            operation_type: query.operation_type,
            after,
            limit: query.limit + 1,
        },
    )
    .await?;
    let next_cursor = if rows.len() as i64 > query.limit {
        rows.truncate(query.limit as usize);
        rows.last().map(encode_cursor)
    } else {
        None
    };
    Ok(OperationPage {
        items: rows.into_iter().map(Operation::from).collect(),
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = Uuid::new_v4();
        let raw = format!(
            "{}|{id}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(
            decode_cursor(&cursor).unwrap(),
            Cursor {
                created_at: at,
                operation_id: id
            }
        );
        assert_eq!(
            decode_cursor("!!!").unwrap_err().code,
            ErrorCode::InvalidCursor
        );
        let no_sep = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("abc");
        assert_eq!(
            decode_cursor(&no_sep).unwrap_err().code,
            ErrorCode::InvalidCursor
        );
    }

    #[test]
    fn list_queries_outside_their_bounds_are_refused() {
        assert!(list_query(Some(0), None, None, None).is_err());
        assert!(list_query(Some(201), None, None, None).is_err());
        assert!(list_query(None, None, Some("done".into()), None).is_err());
        assert!(list_query(None, None, None, Some("upgrade".into())).is_err());
        let query = list_query(None, None, Some("failed".into()), Some("sync".into())).unwrap();
        assert_eq!(query.limit, 50);
        assert_eq!(query.status, Some(OperationStatus::Failed));
        assert_eq!(query.operation_type, Some(OperationType::Sync));
    }
}
