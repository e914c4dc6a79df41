//! Schema of Passare Imports. Each migration is a plain SQL file in `sql/`,
//! applied once and recorded by sea-orm-migration in `seaql_migrations`.

use sea_orm_migration::prelude::*;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(SqlMigration {
                name: "m0001_foundation",
                up: include_str!("../sql/0001_foundation.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0002_import_types",
                up: include_str!("../sql/0002_import_types.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0003_running_safely",
                up: include_str!("../sql/0003_running_safely.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0004_history_and_access",
                up: include_str!("../sql/0004_history_and_access.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0005_resumable_uploads",
                up: include_str!("../sql/0005_resumable_uploads.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0006_rollback_in_batches",
                up: include_str!("../sql/0006_rollback_in_batches.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0007_analysis_jobs",
                up: include_str!("../sql/0007_analysis_jobs.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0009_broker_topology",
                up: include_str!("../sql/0009_broker_topology.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0011_workers",
                up: include_str!("../sql/0011_workers.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0012_start_when_analysed",
                up: include_str!("../sql/0012_start_when_analysed.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0013_dead_letters",
                up: include_str!("../sql/0013_dead_letters.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0014_trace_context",
                up: include_str!("../sql/0014_trace_context.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0015_raw_archive",
                up: include_str!("../sql/0015_raw_archive.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0016_record_events",
                up: include_str!("../sql/0016_record_events.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0018_import_profiles",
                up: include_str!("../sql/0018_import_profiles.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0019_record_events_lz4",
                up: include_str!("../sql/0019_record_events_lz4.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0020_row_hashes",
                up: include_str!("../sql/0020_row_hashes.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0021_drain_turns",
                up: include_str!("../sql/0021_drain_turns.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0022_record_events_compressed_by_workers",
                up: include_str!("../sql/0022_record_events_compressed_by_workers.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0023_before_images_per_type",
                up: include_str!("../sql/0023_before_images_per_type.sql"),
            }),
            Box::new(SqlMigration {
                name: "m0024_room_for_updates",
                up: include_str!("../sql/0024_room_for_updates.sql"),
            }),
        ]
    }
}

/// A migration whose forward step is one SQL script. There is no down step:
/// the service moves forward only, and a bad migration is fixed by a new one.
struct SqlMigration {
    name: &'static str,
    up: &'static str,
}

impl MigrationName for SqlMigration {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SqlMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(self.up).await?;
        Ok(())
    }
}
