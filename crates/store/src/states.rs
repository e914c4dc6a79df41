//! The typed states of stored records. Each is a sea-orm `ActiveEnum`
//! (entities hold it, queries filter by it) and a sqlx type (the bulk
//! statements bind and read it), stored as its snake_case name in a TEXT
//! column whose CHECK constraint lists the same names (`migrations/sql`).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres};

macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* #[sea_orm(string_value = $text)] $variant),+
        }

        passare_imports_domain::text_names!($name { $($variant => $text),+ });

        impl sqlx::Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as sqlx::Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as sqlx::Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $name {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<Postgres>>::decode(value)?;
                Self::parse(text).ok_or_else(|| {
                    format!("{text:?} is not a {}", stringify!($name)).into()
                })
            }
        }
    };
}

stored_enum! {
    /// Lifecycle of an import; see docs/state-machine.md.
    ImportState {
        Draft => "draft",
        Queued => "queued",
        Running => "running",
        Completed => "completed",
        CompletedWithErrors => "completed_with_errors",
        Failed => "failed",
        Stopped => "stopped",
        /// Failed or stopped after writing, all-or-nothing: the workers put
        /// back what it wrote, in batches; then `Failed` or `Stopped`.
        RollingBack => "rolling_back",
    }
}

impl ImportState {
    /// A terminal import never changes state again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::CompletedWithErrors | Self::Failed | Self::Stopped
        )
    }
}

stored_enum! {
    /// Lifecycle of one file of an import.
    FileState {
        Ready => "ready",
        Invalid => "invalid",
        Queued => "queued",
        Running => "running",
        Completed => "completed",
        CompletedWithErrors => "completed_with_errors",
        Failed => "failed",
        /// Its import was stopped before the file finished.
        Stopped => "stopped",
    }
}

impl FileState {
    /// A file whose chunks are all settled.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::CompletedWithErrors | Self::Failed
        )
    }
}

stored_enum! {
    /// Lifecycle of one chunk: queued until one transaction writes it (done),
    /// fails the import or is given up (failed), or finds its import ended
    /// (skipped).
    ChunkState {
        Queued => "queued",
        Done => "done",
        Failed => "failed",
        Skipped => "skipped",
    }
}

stored_enum! {
    /// What an import does when a row fails.
    FailurePolicy {
        /// The import fails at the first failing row and is rolled back.
        StopOnFirstError => "stop_on_first_error",
        /// Every valid row is loaded; failing rows are recorded.
        ImportValidRows => "import_valid_rows",
    }
}

impl FailurePolicy {
    /// Whether row findings block the import (see the domain's `Finding::blocks`).
    pub fn stops_on_first_error(self) -> bool {
        self == Self::StopOnFirstError
    }
}

stored_enum! {
    /// What the worker did about a failed chunk attempt.
    FailureOutcome {
        /// Transient: tried again after a backoff.
        RetryScheduled => "retry_scheduled",
        /// Transient, but past the retry limit: given up and dead-lettered.
        DeadLettered => "dead_lettered",
        /// Permanent: given up at once.
        Failed => "failed",
    }
}

stored_enum! {
    /// Lifecycle of a resumable upload.
    UploadState {
        /// Parts are being sent.
        Active => "active",
        /// CompleteUpload is storing and scanning the file.
        Completing => "completing",
        /// The file is attached to its import.
        Completed => "completed",
        /// Its client gave it up, or completing it was refused.
        Aborted => "aborted",
        /// Nothing was sent before it expired.
        Expired => "expired",
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::Iterable;

    use super::*;

    #[test]
    fn states_round_trip_through_their_stored_names() {
        for s in ImportState::iter() {
            assert_eq!(ImportState::parse(s.as_str()), Some(s));
            assert_eq!(s.to_value(), s.as_str());
        }
        assert_eq!(ImportState::parse("bogus"), None);
        assert!(ImportState::Stopped.is_terminal());
        assert!(!ImportState::Running.is_terminal());
        for s in ChunkState::iter() {
            assert_eq!(ChunkState::parse(&s.to_string()), Some(s));
        }
        assert!(FailurePolicy::StopOnFirstError.stops_on_first_error());
    }
}
