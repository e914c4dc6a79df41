//! Saved import profiles (docs/transform-rules.md): a profile is a name,
//! an import type and an optional organization; its content (mapping,
//! source headers, rules) lives in immutable versions.

use chrono::{DateTime, Utc};
use passare_imports_domain::transform::AppliedProfile;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Requester, StoreError};

/// A profile at one version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Profile {
    pub id: Uuid,
    pub organization_id: Option<i64>,
    pub import_type: String,
    pub name: String,
    pub latest_version: i32,
    pub version: i32,
    pub description: String,
    pub column_mapping: serde_json::Value,
    pub source_headers: serde_json::Value,
    pub rules: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Profile {
    /// The profile as a file records it.
    pub fn applied(&self) -> Result<AppliedProfile, StoreError> {
        let corrupt = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("{what} of profile {}: {e}", self.id))
        };
        Ok(AppliedProfile {
            profile_id: self.id,
            name: self.name.clone(),
            version: self.version,
            column_mapping: serde_json::from_value(self.column_mapping.clone())
                .map_err(|e| corrupt("column mapping", e))?,
            source_headers: serde_json::from_value(self.source_headers.clone())
                .map_err(|e| corrupt("source headers", e))?,
            rules: serde_json::from_value(self.rules.clone()).map_err(|e| corrupt("rules", e))?,
        })
    }
}

/// The content of a new version.
#[derive(Debug, Clone)]
pub struct Content {
    pub name: String,
    pub description: String,
    pub column_mapping: Vec<(String, String)>,
    pub source_headers: Vec<String>,
    pub rules: serde_json::Value,
}

const SELECT: &str = "SELECT p.id, p.organization_id, p.import_type, p.name, p.latest_version,
        v.version, v.description, v.column_mapping, v.source_headers, v.rules,
        p.created_at, v.created_at AS updated_at,
        CASE WHEN v.created_by_email = '' THEN v.created_by_id ELSE v.created_by_email END AS updated_by,
        p.deleted_at
   FROM import_profiles p
   JOIN import_profile_versions v ON v.profile_id = p.id";

/// What became of a create.
#[derive(Debug)]
pub enum Created {
    New(Box<Profile>),
    /// A retry of an earlier create with the same request id.
    Again(Box<Profile>),
    /// Another live profile of the type and organization has the name.
    NameTaken,
}

/// Creates a profile at version 1.
pub async fn create(
    conn: &mut PgConnection,
    organization_id: Option<i64>,
    import_type: &str,
    content: &Content,
    request_id: Option<&str>,
    by: &Requester,
) -> Result<Created, StoreError> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    if let Some(request) = request_id {
        let earlier: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM import_profiles WHERE request_id = $1")
                .bind(request)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(id) = earlier {
            let found = get(&mut tx, id, None).await?;
            return found
                .map(|p| Created::Again(Box::new(p)))
                .ok_or_else(|| StoreError::Corrupt(format!("profile {id} has no version")));
        }
    }
    let id = Uuid::new_v4();
    let inserted = sqlx::query(
        "INSERT INTO import_profiles (id, organization_id, import_type, name, request_id)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(organization_id)
    .bind(import_type)
    .bind(content.name.trim())
    .bind(request_id)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(Created::NameTaken);
    }
    add_version(&mut tx, id, 1, content, by).await?;
    let profile = get(&mut tx, id, None).await?;
    tx.commit().await?;
    profile
        .map(|p| Created::New(Box::new(p)))
        .ok_or_else(|| StoreError::Corrupt(format!("profile {id} vanished")))
}

async fn add_version(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    content: &Content,
    by: &Requester,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO import_profile_versions (profile_id, version, description, column_mapping,
                source_headers, rules, created_by_id, created_by_name, created_by_email)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(version)
    .bind(content.description.trim())
    .bind(serde_json::json!(content.column_mapping))
    .bind(serde_json::json!(content.source_headers))
    .bind(&content.rules)
    .bind(&by.id)
    .bind(&by.name)
    .bind(&by.email)
    .execute(conn)
    .await?;
    Ok(())
}

/// What became of an update.
#[derive(Debug)]
pub enum Updated {
    /// The new version, and the files of imports not yet started moved to it.
    Done(Box<Profile>, u64),
    NotFound,
    Deleted,
    /// The latest version is not the one the caller edited.
    VersionMismatch(i32),
    NameTaken,
}

/// Saves `content` as the profile's next version and moves the files of
/// imports not started yet to it, in one transaction.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    expected_version: Option<i32>,
    content: &Content,
    by: &Requester,
) -> Result<Updated, StoreError> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let row: Option<(i32, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT latest_version, deleted_at FROM import_profiles WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((latest, deleted)) = row else {
        return Ok(Updated::NotFound);
    };
    if deleted.is_some() {
        return Ok(Updated::Deleted);
    }
    if expected_version.is_some_and(|v| v != latest) {
        return Ok(Updated::VersionMismatch(latest));
    }
    let renamed = sqlx::query(
        "UPDATE import_profiles SET name = $2, latest_version = $3, updated_at = now()
          WHERE id = $1
            AND NOT EXISTS (SELECT 1 FROM import_profiles o
                             WHERE o.id <> $1 AND o.deleted_at IS NULL
                               AND COALESCE(o.organization_id, 0) = COALESCE(import_profiles.organization_id, 0)
                               AND o.import_type = import_profiles.import_type
                               AND lower(o.name) = lower($2))",
    )
    .bind(id)
    .bind(content.name.trim())
    .bind(latest + 1)
    .execute(&mut *tx)
    .await?;
    if renamed.rows_affected() == 0 {
        return Ok(Updated::NameTaken);
    }
    add_version(&mut tx, id, latest + 1, content, by).await?;
    let profile = get(&mut tx, id, None)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("profile {id} vanished")))?;
    let applied = serde_json::to_value(profile.applied()?)
        .map_err(|e| StoreError::Corrupt(format!("profile {id}: {e}")))?;
    let moved = sqlx::query(
        "UPDATE import_files f SET profile = $2, updated_at = now()
           FROM imports i
          WHERE f.profile_id = $1 AND i.id = f.import_id AND i.state = 'draft'",
    )
    .bind(id)
    .bind(applied)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Updated::Done(Box::new(profile), moved))
}

/// A profile at `version` (the latest when `None`), deleted or not.
pub async fn get(
    conn: &mut PgConnection,
    id: Uuid,
    version: Option<i32>,
) -> Result<Option<Profile>, StoreError> {
    let sql = format!("{SELECT} WHERE p.id = $1 AND v.version = COALESCE($2, p.latest_version)");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(version)
        .fetch_optional(conn)
        .await?)
}

/// Which profiles to list.
#[derive(Debug, Clone, Default)]
pub struct ProfileFilter {
    pub import_type: Option<String>,
    /// This organization's profiles and the presets for every organization.
    pub organization_id: Option<i64>,
    pub deleted_too: bool,
}

/// Latest versions, by name then id, after `after` (name, id).
pub async fn list(
    conn: &mut PgConnection,
    filter: &ProfileFilter,
    after: Option<(String, Uuid)>,
    limit: u64,
) -> Result<Vec<Profile>, StoreError> {
    let sql = format!(
        "{SELECT}
          WHERE v.version = p.latest_version
            AND ($1::text IS NULL OR p.import_type = $1)
            AND ($2::bigint IS NULL OR p.organization_id IS NULL OR p.organization_id = $2)
            AND ($3 OR p.deleted_at IS NULL)
            AND ($4::text IS NULL OR (lower(p.name), p.id) > (lower($4), $5))
          ORDER BY lower(p.name), p.id LIMIT $6"
    );
    let (after_name, after_id) = after.unzip();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&filter.import_type)
        .bind(filter.organization_id)
        .bind(filter.deleted_too)
        .bind(after_name)
        .bind(after_id)
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch_all(conn)
        .await?)
}

/// Marks a profile deleted; `None` when there is no such profile.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<Option<Profile>, StoreError> {
    sqlx::query(
        "UPDATE import_profiles SET deleted_at = COALESCE(deleted_at, now()), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    get(conn, id, None).await
}
