//! Drafts with several files of any type: create an import, upload named
//! files from memory (with the reading options a `FileHeader` carries), run
//! the analysis, and pick findings out of its report.

use anyhow::Context;
use passare_imports_cli::client::{self, Client};
use passare_imports_proto::v1 as pb;

/// Bytes per `chunk` message of an upload.
const CHUNK_BYTES: usize = 256 * 1024;

/// A file to upload: its name, import type, bytes and how to read them.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub name: String,
    pub import_type: String,
    pub bytes: Vec<u8>,
    /// Text encoding ("utf-8", "utf-16", "windows-1252", …); detected when empty.
    pub encoding: String,
    /// Sheet of a workbook; the first visible one when empty.
    pub sheet_name: String,
    /// Field delimiter; sniffed when empty.
    pub delimiter: String,
    /// Explicit (file header, column) pairs.
    pub column_mapping: Vec<(String, String)>,
    /// A saved import profile to read the file with.
    pub profile_id: String,
}

impl NewFile {
    /// A file read with every option detected.
    pub fn new(name: &str, import_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            import_type: import_type.into(),
            bytes: bytes.into(),
            encoding: String::new(),
            sheet_name: String::new(),
            delimiter: String::new(),
            column_mapping: Vec::new(),
            profile_id: String::new(),
        }
    }

    pub fn profile(mut self, profile_id: &str) -> Self {
        self.profile_id = profile_id.into();
        self
    }

    pub fn encoding(mut self, encoding: &str) -> Self {
        self.encoding = encoding.into();
        self
    }

    pub fn sheet(mut self, sheet_name: &str) -> Self {
        self.sheet_name = sheet_name.into();
        self
    }

    pub fn delimiter(mut self, delimiter: &str) -> Self {
        self.delimiter = delimiter.into();
        self
    }

    /// Adds an explicit mapping of a file header to a column.
    pub fn map(mut self, header: &str, column: &str) -> Self {
        self.column_mapping.push((header.into(), column.into()));
        self
    }

    pub fn header(&self, import_id: &str) -> pb::FileHeader {
        pb::FileHeader {
            import_id: import_id.into(),
            file_name: self.name.clone(),
            import_type: self.import_type.clone(),
            declared_size_bytes: self.bytes.len() as i64,
            encoding: self.encoding.clone(),
            sheet_name: self.sheet_name.clone(),
            delimiter: self.delimiter.clone(),
            column_mapping: self
                .column_mapping
                .iter()
                .map(|(header, column)| pb::ColumnMapping {
                    header: header.clone(),
                    column: column.clone(),
                })
                .collect(),
            profile_id: self.profile_id.clone(),
        }
    }
}

/// Creates a draft import of `org` with `policy`; returns its id.
pub async fn create_draft(
    client: &mut Client,
    org: i64,
    policy: pb::FailurePolicy,
) -> anyhow::Result<String> {
    let import = client
        .create_import(pb::CreateImportRequest {
            organization_id: org.to_string(),
            failure_policy: policy as i32,
            note: String::new(),
            request_id: String::new(),
        })
        .await
        .map_err(client::describe)?
        .into_inner()
        .import
        .context("CreateImport returned no import")?;
    Ok(import.id)
}

/// Uploads one file through the client-streaming UploadFile RPC: the header,
/// then the bytes in chunks.
pub async fn upload(
    client: &mut Client,
    import_id: &str,
    file: &NewFile,
) -> Result<pb::ImportFile, tonic::Status> {
    let mut messages = vec![pb::UploadFileRequest {
        payload: Some(pb::upload_file_request::Payload::Header(
            file.header(import_id),
        )),
    }];
    messages.extend(
        file.bytes
            .chunks(CHUNK_BYTES)
            .map(|chunk| pb::UploadFileRequest {
                payload: Some(pb::upload_file_request::Payload::Chunk(chunk.to_vec())),
            }),
    );
    client
        .upload_file(tokio_stream::iter(messages))
        .await?
        .into_inner()
        .file
        .ok_or_else(|| tonic::Status::internal("UploadFile returned no file"))
}

/// Creates a draft of `org` and uploads `files` in the order given; returns
/// the import id and the uploaded files in that order.
pub async fn draft_with_files(
    client: &mut Client,
    org: i64,
    policy: pb::FailurePolicy,
    files: &[NewFile],
) -> anyhow::Result<(String, Vec<pb::ImportFile>)> {
    let id = create_draft(client, org, policy).await?;
    let mut uploaded = Vec::with_capacity(files.len());
    for f in files {
        let file = upload(client, &id, f)
            .await
            .map_err(|s| client::describe(s).context(format!("uploading {}", f.name)))?;
        uploaded.push(file);
    }
    Ok((id, uploaded))
}

/// Runs AnalyzeImport and waits until a worker has stored the report.
pub async fn analyze(client: &mut Client, import_id: &str) -> anyhow::Result<pb::AnalysisReport> {
    client::analyze(client, import_id).await
}

/// Runs AnalyzeImport, which queues the analysis and returns the import at
/// once.
pub async fn request_analysis(client: &mut Client, import_id: &str) -> anyhow::Result<pb::Import> {
    client
        .analyze_import(pb::AnalyzeImportRequest {
            import_id: import_id.into(),
        })
        .await
        .map_err(client::describe)?
        .into_inner()
        .import
        .context("AnalyzeImport returned no import")
}

/// Waits until the import's analysis job is done, and returns its report;
/// an error when the job failed.
pub async fn wait_analysis(
    client: &mut Client,
    import_id: &str,
) -> anyhow::Result<pb::AnalysisReport> {
    client::wait_for_analysis(client, import_id).await
}

/// The analysis of the file named `file_name`.
pub fn file_analysis<'a>(
    report: &'a pb::AnalysisReport,
    file_name: &str,
) -> anyhow::Result<&'a pb::FileAnalysis> {
    report
        .files
        .iter()
        .find(|f| f.file_name == file_name)
        .with_context(|| format!("the report has no file {file_name}"))
}

/// The finding of `kind` in the file named `file_name`, if any.
pub fn finding<'a>(
    report: &'a pb::AnalysisReport,
    file_name: &str,
    kind: pb::FindingKind,
) -> Option<&'a pb::Finding> {
    report
        .files
        .iter()
        .filter(|f| f.file_name == file_name)
        .flat_map(|f| &f.findings)
        .find(|f| f.kind == kind as i32)
}

/// The finding of `kind` about the organization (missing prerequisites).
pub fn org_finding(report: &pb::AnalysisReport, kind: pb::FindingKind) -> Option<&pb::Finding> {
    report.findings.iter().find(|f| f.kind == kind as i32)
}

/// Kinds of every finding of the file named `file_name`, as their proto names.
pub fn finding_kinds(report: &pb::AnalysisReport, file_name: &str) -> Vec<String> {
    report
        .files
        .iter()
        .filter(|f| f.file_name == file_name)
        .flat_map(|f| &f.findings)
        .map(|f| kind_name(f.kind))
        .collect()
}

/// A finding kind's proto name ("FINDING_KIND_TYPE_ERROR").
pub fn kind_name(kind: i32) -> String {
    pb::FindingKind::try_from(kind)
        .map(|k| k.as_str_name().to_string())
        .unwrap_or_else(|_| kind.to_string())
}
