//! Uploads: one pipeline stores a file's bytes as they arrive, hashes and
//! scans them in the same pass, converts workbooks and other encodings to
//! UTF-8 text, and attaches the file to its draft import. The streaming
//! upload (gRPC) and the resumable upload (parts, for browsers) both feed
//! their bytes to [`ingest`].

mod convert;
mod pipeline;
pub mod resumable;

pub use pipeline::ingest;

use passare_imports_domain::catalog::ImportTypeDef;
use passare_imports_domain::file::decode::Encoding;
use passare_imports_domain::transform::AppliedProfile;
use uuid::Uuid;

use crate::app::App;
use crate::error::ApiError;

/// How the request says to read a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    pub encoding: Option<Encoding>,
    pub sheet: Option<String>,
    pub delimiter: Option<u8>,
    /// Explicit mapping of file header to column, ahead of names and aliases.
    pub mapping: Vec<(String, String)>,
    /// The saved import profile the file is read with.
    pub profile_id: Option<Uuid>,
}

/// A file about to be uploaded into a draft import.
#[derive(Debug, Clone)]
pub struct FileUpload {
    pub import_id: Uuid,
    pub file_name: String,
    pub def: &'static ImportTypeDef,
    pub declared_size: u64,
    /// Lower-case hex SHA-256 the bytes must have, when the client declared one.
    pub declared_sha256: Option<String>,
    pub reading: ReadOptions,
    /// The profile of `reading.profile_id`, resolved when the bytes arrive.
    pub profile: Option<AppliedProfile>,
}

impl FileUpload {
    /// The explicit mapping the file is scanned with (the request's, then
    /// its profile's) and the columns the profile's rules fill.
    pub fn scan_mapping(&self) -> (Vec<(String, String)>, Vec<&'static str>) {
        let explicit = AppliedProfile::merge_mapping(self.profile.as_ref(), &self.reading.mapping);
        let provided = self
            .profile
            .as_ref()
            .and_then(|p| p.program(self.def).ok())
            .map(|p| p.written_columns())
            .unwrap_or_default();
        (explicit, provided)
    }

    /// Checks the file's name and declared size; `field` prefixes the
    /// request fields named in errors ("header").
    pub fn check(&self, app: &App, field: &str) -> Result<(), ApiError> {
        if self.file_name.trim().is_empty() || self.file_name.len() > 255 {
            return Err(ApiError::invalid(
                &format!("{field}.file_name"),
                "must be 1 to 255 characters",
            ));
        }
        if let Some(sha) = &self.declared_sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ApiError::invalid(
                "declared_sha256",
                "must be 64 hexadecimal digits (the file's SHA-256)",
            ));
        }
        let max = app.config.max_file_bytes;
        if self.declared_size == 0 || self.declared_size > max {
            return Err(ApiError::invalid(
                &format!("{field}.declared_size_bytes"),
                format!("must be between 1 and {max} bytes (the largest file accepted)"),
            ));
        }
        Ok(())
    }
}
