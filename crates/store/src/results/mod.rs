//! Row-level results of an import: its row errors (open, or superseded by a
//! retry), the edits people make to failed rows, queueing a retry of the
//! still-failed rows as a new attempt of the same import, and the retention
//! job's purge of what an old import stored.

mod edits;
mod purge;
mod retry;
mod row_errors;

pub use edits::{Edited, edits_of, now, set_edits};
pub use purge::{Purge, begin_purge, due_for_purge};
pub use retry::{Retry, RetryFile, queue_retry};
pub use row_errors::{
    RowErrorCursor, RowErrorRow, chunks_with_open_errors, files_with_open_errors,
    first_row_errors_of_files, list_row_errors, open_failed_rows,
};
