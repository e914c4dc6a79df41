//! sea-orm entities of the service's own tables and of the organization setup
//! it reads, with their states typed (`crate::states`). Column meanings are
//! documented in `migrations/sql`. The twelve target tables are not entities:
//! the catalog shapes them, and the loader writes them in bulk.

/// One entity: its module, table, optional `Eq`, doc and columns; the rest
/// (relations, behaviour) is the same for every table here.
macro_rules! entity {
    ($(#[$doc:meta])* $module:ident = $table:literal $(, $eq:ident)? { $($columns:tt)* }) => {
        pub mod $module {
            #[allow(unused_imports)]
            use crate::states::*;
            use sea_orm::entity::prelude::*;

            $(#[$doc])*
            #[derive(Clone, Debug, PartialEq, DeriveEntityModel $(, $eq)?)]
            #[sea_orm(table_name = $table)]
            pub struct Model { $($columns)* }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity! {
    organizations = "organizations", Eq {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub name: String,
        pub created_at: DateTimeWithTimeZone,
    }
}

entity! {
    locations = "locations", Eq {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub organization_id: i64,
        pub name: String,
        pub created_at: DateTimeWithTimeZone,
    }
}

entity! {
    staff_users = "staff_users", Eq {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub organization_id: i64,
        pub email: String,
        pub name: String,
        pub created_at: DateTimeWithTimeZone,
    }
}

entity! {
    imports = "imports" {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub organization_id: i64,
        pub state: ImportState,
        pub failure_policy: FailurePolicy,
        pub note: String,
        pub request_id: Option<Uuid>,
        pub requested_by_id: String,
        pub requested_by_name: String,
        pub requested_by_email: String,
        pub queue_seq: Option<i64>,
        pub error: Option<Json>,
        pub created_at: DateTimeWithTimeZone,
        pub queued_at: Option<DateTimeWithTimeZone>,
        pub started_at: Option<DateTimeWithTimeZone>,
        pub finished_at: Option<DateTimeWithTimeZone>,
        pub updated_at: DateTimeWithTimeZone,
        pub analysis: Option<Json>,
        pub analysis_fingerprint: Option<String>,
        pub analyzed_at: Option<DateTimeWithTimeZone>,
        pub stopped_by_id: Option<String>,
        pub stopped_by_name: Option<String>,
        pub stopped_by_email: Option<String>,
        pub stopped_at: Option<DateTimeWithTimeZone>,
        pub stop_reason: Option<String>,
        pub rolled_back_at: Option<DateTimeWithTimeZone>,
        pub attempt: i32,
        pub results_purged_at: Option<DateTimeWithTimeZone>,
        pub rollback_started_at: Option<DateTimeWithTimeZone>,
        pub rollback_records_done: i64,
        pub rollback_records_total: i64,
        /// The `traceparent` of the call that started the import.
        pub trace_context: Option<String>,
    }
}

entity! {
    import_files = "import_files" {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub import_id: Uuid,
        pub organization_id: i64,
        pub position: i32,
        pub import_type: String,
        pub file_name: String,
        pub storage_key: String,
        pub size_bytes: i64,
        pub sha256: String,
        pub format: String,
        pub delimiter: String,
        pub headers: Json,
        pub row_count: i64,
        pub chunk_plan: Json,
        pub state: FileState,
        pub problems: Json,
        pub chunks_total: i32,
        pub chunks_done: i32,
        pub rows_processed: i64,
        pub rows_created: i64,
        pub rows_updated: i64,
        pub rows_unchanged: i64,
        pub rows_failed: i64,
        pub created_at: DateTimeWithTimeZone,
        pub updated_at: DateTimeWithTimeZone,
        pub encoding: String,
        pub sheet_name: Option<String>,
        pub data_key: Option<String>,
        pub column_mapping: Json,
        pub load_order: i32,
        pub rows_stale: i64,
        pub rows_rolled_back: i64,
        pub profile_id: Option<Uuid>,
        pub profile: Option<Json>,
    }
}

entity! {
    chunks = "chunks", Eq {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub import_id: Uuid,
        pub file_id: Uuid,
        pub organization_id: i64,
        pub seq: i32,
        pub first_row: i64,
        pub row_count: i64,
        pub byte_start: i64,
        pub byte_end: i64,
        pub state: ChunkState,
        pub attempts: i32,
        pub worker: Option<String>,
        pub rows_created: i64,
        pub rows_updated: i64,
        pub rows_unchanged: i64,
        pub rows_failed: i64,
        pub queued_at: DateTimeWithTimeZone,
        pub started_at: Option<DateTimeWithTimeZone>,
        pub write_started_at: Option<DateTimeWithTimeZone>,
        pub finished_at: Option<DateTimeWithTimeZone>,
        pub rows_stale: i64,
        pub not_before: Option<DateTimeWithTimeZone>,
        pub attempt: i32,
        /// The retry file the chunk reads, instead of the file's own data.
        pub data_key: Option<String>,
        /// For a retry chunk: the original row number of each of its records.
        pub row_numbers: Option<Vec<i64>>,
    }
}

entity! {
    row_errors = "row_errors", Eq {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub import_id: Uuid,
        pub file_id: Uuid,
        pub chunk_id: Option<i64>,
        pub row_number: i64,
        pub column_name: String,
        pub value: String,
        pub reason: String,
        pub created_at: DateTimeWithTimeZone,
        pub kind: String,
        pub attempt: i32,
        pub superseded_at: Option<DateTimeWithTimeZone>,
    }
}

entity! {
    /// One paused scope: an organization, or all of them (`organization_id` NULL).
    import_pauses = "import_pauses", Eq {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub organization_id: Option<i64>,
        pub reason: String,
        pub paused_by_id: String,
        pub paused_by_name: String,
        pub paused_by_email: String,
        pub paused_at: DateTimeWithTimeZone,
    }
}

entity! {
    /// One failed attempt at a chunk, with what a developer needs to tell why.
    chunk_failures = "chunk_failures", Eq {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub chunk_id: i64,
        pub import_id: Uuid,
        pub file_id: Uuid,
        pub organization_id: i64,
        pub chunk_seq: i32,
        pub first_row: i64,
        pub last_row: i64,
        pub attempt: i32,
        pub error_kind: String,
        pub transient: bool,
        pub message: String,
        pub causes: Json,
        pub backtrace: String,
        pub worker_host: String,
        pub worker_pid: i32,
        pub outcome: FailureOutcome,
        pub retry_at: Option<DateTimeWithTimeZone>,
        pub queued_at: DateTimeWithTimeZone,
        pub read_started_at: Option<DateTimeWithTimeZone>,
        pub write_started_at: Option<DateTimeWithTimeZone>,
        pub failed_at: DateTimeWithTimeZone,
    }
}

entity! {
    /// One step of an import's history.
    import_events = "import_events", Eq {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub import_id: Uuid,
        pub kind: String,
        pub at: DateTimeWithTimeZone,
        pub actor_id: Option<String>,
        pub actor_name: Option<String>,
        pub actor_email: Option<String>,
        pub detail: String,
    }
}

entity! {
    /// One state-changing call.
    audit_events = "audit_events", Eq {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: DateTimeWithTimeZone,
        pub actor_id: String,
        pub actor_name: String,
        pub actor_email: String,
        pub action: String,
        pub organization_id: Option<i64>,
        pub import_id: Option<Uuid>,
        pub request_id: String,
        pub details: Json,
    }
}

entity! {
    /// A resumable upload of one file into a draft import.
    uploads = "uploads", Eq {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub import_id: Uuid,
        pub organization_id: i64,
        pub request_id: Option<Uuid>,
        pub created_by_id: String,
        pub created_by_name: String,
        pub created_by_email: String,
        pub file_name: String,
        pub import_type: String,
        pub declared_size: i64,
        pub declared_sha256: Option<String>,
        pub reading: Json,
        pub committed_bytes: i64,
        pub state: UploadState,
        pub end_reason: Option<String>,
        pub file_id: Option<Uuid>,
        pub created_at: DateTimeWithTimeZone,
        pub updated_at: DateTimeWithTimeZone,
        pub expires_at: DateTimeWithTimeZone,
    }
}

entity! {
    /// One stored part of a resumable upload.
    upload_parts = "upload_parts", Eq {
        #[sea_orm(primary_key, auto_increment = false)]
        pub upload_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub offset_bytes: i64,
        pub length: i64,
        pub storage_key: String,
    }
}
