//! How fast a running import loads, from the times its chunks were stored
//! with (`chunks.started_at`, `finished_at`), so every replica reads the same
//! speed and the same estimate: the window ends at the import's latest
//! finished chunk, not at the reader's clock.

use std::collections::HashMap;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::StoreError;
use crate::states::ChunkState;

/// A running import's recent speed and when it should end at that speed.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRate {
    /// Rows of the chunks finished in the window, over the time from the
    /// first of them starting to the last finishing.
    pub rows_per_second: f64,
    /// Rows of the import's chunks still queued.
    pub rows_left: i64,
    /// The latest finished chunk's end plus `rows_left` at that speed.
    pub estimated_completion: Option<DateTime<Utc>>,
}

/// The speeds of the given imports over the chunks that finished within
/// `window` of each import's latest finished chunk; imports with no finished
/// chunk are absent.
pub async fn of_imports(
    conn: &mut PgConnection,
    ids: &[Uuid],
    window: std::time::Duration,
) -> Result<HashMap<Uuid, ImportRate>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, i64, f64, DateTime<Utc>, i64)> = sqlx::query_as(
        "WITH last AS (
             SELECT import_id, max(finished_at) AS at FROM chunks
              WHERE import_id = ANY($1) AND state IN ($4, $5) AND finished_at IS NOT NULL
              GROUP BY import_id),
         recent AS (
             SELECT c.import_id, sum(c.row_count)::bigint AS rows,
                    extract(epoch FROM l.at - min(COALESCE(c.started_at, c.finished_at)))::float8 AS secs,
                    l.at
               FROM chunks c JOIN last l ON l.import_id = c.import_id
              WHERE c.state IN ($4, $5) AND c.finished_at IS NOT NULL
                AND c.finished_at >= l.at - make_interval(secs => $2)
              GROUP BY c.import_id, l.at)
         SELECT r.import_id, r.rows, r.secs, r.at,
                COALESCE((SELECT sum(q.row_count) FROM chunks q
                           WHERE q.import_id = r.import_id AND q.state = $3), 0)::bigint
           FROM recent r",
    )
    .bind(ids)
    .bind(window.as_secs_f64())
    .bind(ChunkState::Queued)
    .bind(ChunkState::Done)
    .bind(ChunkState::Failed)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, rows, secs, _, _)| *rows > 0 && *secs > 0.0)
        .map(|(id, rows, secs, last, left)| {
            let rows_per_second = rows as f64 / secs;
            let estimated_completion = ChronoDuration::try_milliseconds(
                (left as f64 / rows_per_second * 1000.0).round() as i64,
            )
            .map(|d| last + d);
            (
                id,
                ImportRate {
                    rows_per_second,
                    rows_left: left,
                    estimated_completion,
                },
            )
        })
        .collect())
}
