//! Organizations and the setup Passare manages for them (locations, staff,
//! GL and bank accounts): found by id or name for the organization picker,
//! checked for the prerequisites of an import type, and created for demos
//! and tests.

use passare_imports_domain::catalog::ImportTypeDef;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
// Table names below come from the compiled catalog or constants, never from a request.
use sqlx::{AssertSqlSafe, PgConnection};

use crate::entities::organizations;
use crate::{StoreError, exec};

pub async fn find(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<organizations::Model>, StoreError> {
    exec::one(conn, organizations::Entity::find_by_id(id)).await
}

/// The organizations of `ids` that exist, in one statement.
pub async fn find_many(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<organizations::Model>, StoreError> {
    exec::all(
        conn,
        organizations::Entity::find().filter(organizations::Column::Id.is_in(ids.iter().copied())),
    )
    .await
}

/// Organizations whose name contains `query` (any case) or whose id it is,
/// by name then id, after `cursor` (lower-case name, id); only `only` when
/// given (a user who sees their own organization alone).
pub async fn list(
    conn: &mut PgConnection,
    query: &str,
    only: Option<i64>,
    cursor: Option<(String, i64)>,
    limit: u64,
) -> Result<Vec<organizations::Model>, StoreError> {
    let query = query.trim().to_string();
    let mut cond = Condition::all();
    if !query.is_empty() {
        cond = cond.add(
            Condition::any()
                .add(Expr::cust_with_values(
                    "position(lower($1) in lower(name)) > 0",
                    [query.clone()],
                ))
                .add(Expr::cust_with_values("id::text = $1", [query])),
        );
    }
    if let Some(org) = only {
        cond = cond.add(organizations::Column::Id.eq(org));
    }
    if let Some((name, id)) = cursor {
        cond = cond.add(Expr::cust_with_values(
            "(lower(name), id) > ($1, $2)",
            [sea_orm::Value::from(name), id.into()],
        ));
    }
    exec::all(
        conn,
        organizations::Entity::find()
            .filter(cond)
            .order_by_asc(Expr::cust("lower(name)"))
            .order_by_asc(organizations::Column::Id)
            .limit(limit),
    )
    .await
}

/// Organization setup that `def` needs and the organization lacks.
pub async fn missing_prerequisites(
    conn: &mut PgConnection,
    organization_id: i64,
    def: &ImportTypeDef,
) -> Result<Vec<&'static str>, StoreError> {
    let mut missing = Vec::new();
    for p in def.prerequisites {
        let present: bool = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE organization_id = $1)",
            p.table
        )))
        .bind(organization_id)
        .fetch_one(&mut *conn)
        .await?;
        if !present {
            missing.push(p.missing);
        }
    }
    Ok(missing)
}

/// Organization setup for demos and tests (Passare manages the real one).
#[derive(Debug, Clone, Copy, Default)]
pub struct OrgSetup<'a> {
    pub locations: &'a [&'a str],
    /// (e-mail, name)
    pub staff: &'a [(&'a str, &'a str)],
    /// (code, name)
    pub gl_accounts: &'a [(&'a str, &'a str)],
    /// (number, name)
    pub bank_accounts: &'a [(&'a str, &'a str)],
}

/// Creates an organization and the setup given, leaving what exists alone.
pub async fn ensure_demo(
    conn: &mut PgConnection,
    id: i64,
    name: &str,
    setup: OrgSetup<'_>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO organizations (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(id)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    for location in setup.locations {
        sqlx::query(
            "INSERT INTO locations (organization_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(*location)
        .execute(&mut *conn)
        .await?;
    }
    let pairs = [
        ("staff_users (organization_id, email, name)", setup.staff),
        (
            "gl_accounts (organization_id, code, name)",
            setup.gl_accounts,
        ),
        (
            "bank_accounts (organization_id, number, name)",
            setup.bank_accounts,
        ),
    ];
    for (table, rows) in pairs {
        for (a, b) in rows {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {table} VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            )))
            .bind(id)
            .bind(*a)
            .bind(*b)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
