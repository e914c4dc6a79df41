//! One way to run a statement. Queries on the service's own tables are
//! built with sea-orm's typed builder (entities, `ActiveEnum` states) and run
//! here on a sqlx connection — a pooled one, a transaction, or the fenced
//! chunk transaction that also COPYs — so one query function serves all
//! three. Raw SQL stays for what the catalog shapes at run time (the twelve
//! target tables), bulk statements and the locks.

use sea_orm::sea_query::IntoCondition;
use sea_orm::sea_query::{Expr, Values};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, QueryTrait, Select, Statement,
};
use sea_query_sqlx::SqlxValues;
use sqlx::{AssertSqlSafe, PgConnection, Postgres};

use crate::StoreError;

/// A sqlx query of a statement sea-orm built (its SQL comes from the
/// builder, its values are bound).
fn query(stmt: Statement) -> sqlx::query::Query<'static, Postgres, SqlxValues> {
    sqlx::query_with(
        AssertSqlSafe(stmt.sql),
        SqlxValues(stmt.values.unwrap_or(Values(Vec::new()))),
    )
}

fn model<M: FromQueryResult>(row: sqlx::postgres::PgRow) -> Result<M, StoreError> {
    Ok(M::from_query_result(&QueryResult::from(row), "")?)
}

/// Every record a select finds.
pub async fn all<E: EntityTrait>(
    conn: &mut PgConnection,
    select: Select<E>,
) -> Result<Vec<E::Model>, StoreError> {
    let rows = query(select.build(DbBackend::Postgres))
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(model).collect()
}

/// The records a query finds, or why it failed.
pub type Records<M> = Result<Vec<M>, StoreError>;

/// The records a raw statement finds, read as `M`: for the few reads the
/// builder cannot shape (a lateral join over an array of parents); the
/// statement selects `M`'s columns.
pub async fn all_raw<M: FromQueryResult>(
    conn: &mut PgConnection,
    statement: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
) -> Records<M> {
    statement
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(model)
        .collect()
}

/// The records of one entity matching `condition`, in ascending `order`:
/// the children of a parent (an import's files, an upload's parts).
pub async fn all_by<C>(
    conn: &mut PgConnection,
    condition: impl IntoCondition,
    order: C,
) -> Records<<C::EntityName as EntityTrait>::Model>
where
    C: ColumnTrait,
    C::EntityName: EntityTrait,
{
    all(
        conn,
        C::EntityName::find().filter(condition).order_by_asc(order),
    )
    .await
}

/// The first record a select finds.
pub async fn one<E: EntityTrait>(
    conn: &mut PgConnection,
    select: Select<E>,
) -> Result<Option<E::Model>, StoreError> {
    let row = query(select.limit(1).build(DbBackend::Postgres))
        .fetch_optional(conn)
        .await?;
    row.map(model).transpose()
}

/// How many records a select finds.
pub async fn count<E: EntityTrait>(
    conn: &mut PgConnection,
    select: Select<E>,
) -> Result<u64, StoreError> {
    let stmt = select
        .select_only()
        .column_as(Expr::cust("count(*)"), "n")
        .build(DbBackend::Postgres);
    let n: i64 = sqlx::query_scalar_with(
        AssertSqlSafe(stmt.sql),
        SqlxValues(stmt.values.unwrap_or(Values(Vec::new()))),
    )
    .fetch_one(conn)
    .await?;
    Ok(n.max(0) as u64)
}

/// Runs an insert, update or delete; returns the rows it affected.
pub async fn run(conn: &mut PgConnection, statement: impl QueryTrait) -> Result<u64, StoreError> {
    Ok(query(statement.build(DbBackend::Postgres))
        .execute(conn)
        .await?
        .rows_affected())
}

/// Runs a statement that returns records (an insert or update with
/// `RETURNING`), and decodes them.
pub async fn returning<M: FromQueryResult>(
    conn: &mut PgConnection,
    statement: impl QueryTrait,
) -> Result<Vec<M>, StoreError> {
    let rows = query(statement.build(DbBackend::Postgres))
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(model).collect()
}

/// Inserts a record and returns it as stored (defaults filled in).
pub async fn insert<A>(
    conn: &mut PgConnection,
    record: A,
) -> Result<<A::Entity as EntityTrait>::Model, StoreError>
where
    A: ActiveModelTrait,
{
    let mut insert = <A::Entity as EntityTrait>::insert(record);
    insert.query().returning_all();
    let row = query(insert.build(DbBackend::Postgres))
        .fetch_one(conn)
        .await?;
    model(row)
}

/// Inserts records and returns them as stored, in order.
pub async fn insert_many<A>(
    conn: &mut PgConnection,
    records: Vec<A>,
) -> Result<Vec<<A::Entity as EntityTrait>::Model>, StoreError>
where
    A: ActiveModelTrait,
{
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let mut insert = <A::Entity as EntityTrait>::insert_many(records);
    insert.query().returning_all();
    let rows = query(insert.build(DbBackend::Postgres))
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(model).collect()
}
