//! Who may call what. Every ImportService RPC is called with every kind of
//! token: no token, a token that is not a JWT, one signed with another
//! secret, an expired one (those four are UNAUTHENTICATED everywhere), a
//! plain user of organization 1042 (reads of their own organization only;
//! anything of another organization is NOT_FOUND exactly like what does not
//! exist; every change and every staff-only read is PERMISSION_DENIED), a
//! super admin and a developer (everything). Only developers see the
//! backtraces and cause chains of failed chunk attempts.

use std::time::Duration;

use anyhow::Context;
use passare_imports_cli::client;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_proto::v1::import_service_client::ImportServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The identity of the forged and the expired token: staff with every claim,
/// so nothing but the token itself can refuse it.
const INTRUDER: User<'static> = User {
    id: "intruder-1",
    super_admin: true,
    developer: true,
    org: None,
};

/// The organization MEMBER belongs to, and another one.
const OWN_ORG: i64 = 1042;
const OTHER_ORG: i64 = 2001;
/// An organization that does not exist.
const NO_ORG: i64 = 9999;

/// Longest any single call (or first stream message) may take.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// Sends `authorization` when it has one (the CLI's client always does).
#[derive(Clone)]
struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

type Caller = ImportServiceClient<InterceptedService<Channel, Bearer>>;

async fn caller(env: &TestEnv, token: Option<String>) -> anyhow::Result<Caller> {
    let channel = Channel::from_shared(env.url())?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    let bearer = token
        .map(|t| format!("Bearer {t}").parse::<MetadataValue<Ascii>>())
        .transpose()?;
    Ok(
        ImportServiceClient::with_interceptor(channel, Bearer(bearer))
            .max_decoding_message_size(64 * 1024 * 1024),
    )
}

/// The kinds of token a call is made with: the columns of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NoToken,
    Garbage,
    Foreign,
    Expired,
    Member,
    Admin,
    Developer,
}

const KINDS: [Kind; 7] = [
    Kind::NoToken,
    Kind::Garbage,
    Kind::Foreign,
    Kind::Expired,
    Kind::Member,
    Kind::Admin,
    Kind::Developer,
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::NoToken => "no token",
            Kind::Garbage => "garbage",
            Kind::Foreign => "foreign",
            Kind::Expired => "expired",
            Kind::Member => "MEMBER",
            Kind::Admin => "ADMIN",
            Kind::Developer => "DEVELOPER",
        }
    }

    fn token(self, env: &TestEnv) -> anyhow::Result<Option<String>> {
        let now = chrono::Utc::now().timestamp() as u64;
        Ok(match self {
            Kind::NoToken => None,
            Kind::Garbage => Some("not-a-jwt.at-all".into()),
            Kind::Foreign => Some(service::sign(
                "another-secret-that-is-long-enough-for-hs256",
                &Claims {
                    sub: INTRUDER.id.into(),
                    name: "Intruder".into(),
                    email: "intruder@example.com".into(),
                    super_admin: true,
                    developer: true,
                    exp: now + 3600,
                    iat: now,
                    ..Claims::default()
                },
            )?),
            // An hour past expiry: well beyond the validation leeway.
            Kind::Expired => Some(env.token_with(&INTRUDER, now - 3600)),
            Kind::Member => Some(env.token(&MEMBER)),
            Kind::Admin => Some(env.token(&ADMIN)),
            Kind::Developer => Some(env.token(&DEVELOPER)),
        })
    }
}

/// What a row of the matrix is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Nothing of an organization (catalog, pauses, audit log, …).
    Any,
    /// Organization 1042 (MEMBER's own) or an import of it.
    Own,
    /// Organization 2001 or an import of it.
    Other,
    /// An import id / organization that does not exist.
    Unknown,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Any => "-",
            Target::Own => "org 1042",
            Target::Other => "org 2001",
            Target::Unknown => "unknown",
        }
    }

    fn org(self) -> String {
        match self {
            Target::Any => String::new(),
            Target::Own => OWN_ORG.to_string(),
            Target::Other => OTHER_ORG.to_string(),
            Target::Unknown => NO_ORG.to_string(),
        }
    }
}

/// Every ImportService RPC, named as in the proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    CreateImport,
    UploadFile,
    CreateUpload,
    WriteUploadPart,
    GetUpload,
    CompleteUpload,
    AbortUpload,
    RemoveFile,
    AnalyzeImport,
    StartImport,
    ListImportTypes,
    GetImportTemplate,
    GetImport,
    ListImports,
    WatchImport,
    StopImport,
    PauseImports,
    ResumeImports,
    ListPauses,
    ListChunkFailures,
    GetQueueMonitor,
    ListWorkers,
    ListDeadLetters,
    RequeueDeadLetters,
    DiscardDeadLetters,
    ListRowErrors,
    DownloadResults,
    UpdateRows,
    UploadCorrections,
    RetryFailedRows,
    GetRecordSource,
    ListAuditEvents,
    ListOrganizations,
    CreateProfile,
    UpdateProfile,
    GetProfile,
    ListProfiles,
    DeleteProfile,
    SuggestProfiles,
}

/// The imports of one organization that the calls of one group of columns
/// use: an IMPORT_VALID_ROWS import that completed with one failed row
/// (row 2), and a draft with two files.
#[derive(Debug, Clone)]
struct Set {
    org: i64,
    /// Case numbers of this set start with it.
    prefix: String,
    done: String,
    done_file: String,
    draft: String,
    /// The first of the draft's two files.
    draft_file: String,
    /// A resumable upload into the draft, begun by a fixture user (so the
    /// callers' own upload limits stay free), no part sent yet.
    upload: String,
}

/// The canonical sets (used by MEMBER and the four unauthenticated columns,
/// so they must stay untouched), and a set of each organization for ADMIN
/// and for DEVELOPER, whose calls succeed and change them.
struct Fixtures {
    canonical: [Set; 2],
    admin: [Set; 2],
    developer: [Set; 2],
    ghost_import: String,
    ghost_file: String,
    ghost_upload: String,
}

impl Fixtures {
    fn set(&self, kind: Kind, target: Target) -> &Set {
        let i = usize::from(target == Target::Other);
        match kind {
            Kind::Admin => &self.admin[i],
            Kind::Developer => &self.developer[i],
            _ => &self.canonical[i],
        }
    }

    /// Every id a NOT_FOUND message may name.
    fn ids(&self) -> Vec<String> {
        let mut ids = vec![
            self.ghost_import.clone(),
            self.ghost_file.clone(),
            self.ghost_upload.clone(),
        ];
        for s in self
            .canonical
            .iter()
            .chain(&self.admin)
            .chain(&self.developer)
        {
            ids.extend([
                s.done.clone(),
                s.done_file.clone(),
                s.draft.clone(),
                s.draft_file.clone(),
                s.upload.clone(),
            ]);
        }
        ids.extend([OTHER_ORG.to_string(), NO_ORG.to_string()]);
        ids
    }
}

/// Cases with one row (row 2) whose date of death is not a date.
fn done_csv(prefix: &str) -> Vec<u8> {
    format!(
        "case_number,deceased_first_name,deceased_last_name,date_of_death\n\
         {prefix}1,Ann,Doe,2024-01-02\n\
         {prefix}2,Ben,Roe,not a date\n\
         {prefix}3,Cal,Poe,2024-02-03\n"
    )
    .into_bytes()
}

/// Two valid cases whose numbers start with `prefix`.
fn valid_csv(prefix: &str) -> Vec<u8> {
    format!(
        "case_number,deceased_first_name,deceased_last_name\n\
         {prefix}1,Dee,Doe\n\
         {prefix}2,Eve,Roe\n"
    )
    .into_bytes()
}

/// The bytes of a set's resumable upload.
fn upload_csv(prefix: &str) -> Vec<u8> {
    valid_csv(&format!("{prefix}R"))
}

/// Begins the set's resumable upload as a fixture user of its own.
async fn begin_upload(env: &TestEnv, draft: &str, prefix: &str) -> anyhow::Result<String> {
    let id = format!("fixture-{prefix}");
    let fixture = User {
        id: &id,
        super_admin: true,
        developer: false,
        org: None,
    };
    let upload = env
        .client_as(&fixture)
        .await?
        .create_upload(pb::CreateUploadRequest {
            header: Some(pb::FileHeader {
                import_id: draft.to_string(),
                file_name: format!("{prefix}-r.csv"),
                import_type: "cases".into(),
                declared_size_bytes: upload_csv(prefix).len() as i64,
                ..Default::default()
            }),
            declared_sha256: String::new(),
            request_id: String::new(),
        })
        .await
        .map_err(client::describe)?
        .into_inner()
        .upload
        .context("no upload")?;
    Ok(upload.id)
}

/// Creates one set: the completed-with-errors import is started, not waited for.
async fn make_set(
    env: &TestEnv,
    client: &mut client::Client,
    org: i64,
    prefix: &str,
) -> anyhow::Result<Set> {
    let (done, done_files) = files::draft_with_files(
        client,
        org,
        pb::FailurePolicy::ImportValidRows,
        &[files::NewFile::new(
            &format!("{prefix}-done.csv"),
            "cases",
            done_csv(prefix),
        )],
    )
    .await?;
    start(client, &done).await.map_err(client::describe)?;
    let (draft, draft_files) = files::draft_with_files(
        client,
        org,
        pb::FailurePolicy::ImportValidRows,
        &[
            files::NewFile::new(
                &format!("{prefix}-a.csv"),
                "cases",
                valid_csv(&format!("{prefix}A")),
            ),
            files::NewFile::new(
                &format!("{prefix}-b.csv"),
                "cases",
                valid_csv(&format!("{prefix}B")),
            ),
        ],
    )
    .await?;
    let upload = begin_upload(env, &draft, prefix).await?;
    Ok(Set {
        org,
        prefix: prefix.into(),
        done,
        done_file: done_files.first().context("one file")?.id.clone(),
        draft,
        draft_file: draft_files.first().context("two files")?.id.clone(),
        upload,
    })
}

/// Waits until the set's import has completed with its one failed row.
async fn settle(client: &mut client::Client, set: &Set) -> anyhow::Result<()> {
    let done = wait_until(client, &set.done, Duration::from_secs(120), |i| {
        client::is_terminal(i.state)
    })
    .await?;
    anyhow::ensure!(
        done.state == pb::ImportState::CompletedWithErrors as i32
            && done.progress.as_ref().map(|p| p.rows_failed) == Some(1),
        "fixture {} of organization {} did not complete with one error: {done:#?}",
        set.prefix,
        set.org
    );
    Ok(())
}

/// The first message of a server stream, or the status that ended it.
async fn first<T>(
    stream: Result<tonic::Response<tonic::Streaming<T>>, Status>,
) -> Result<T, Status> {
    stream?
        .into_inner()
        .message()
        .await?
        .ok_or_else(|| Status::unknown("the stream ended without a message"))
}

/// Makes one call; `Ok` carries what is wrong with the answer ("" when nothing).
async fn call(
    rpc: Rpc,
    target: Target,
    kind: Kind,
    c: &mut Caller,
    fx: &Fixtures,
) -> Result<String, Status> {
    let set = fx.set(kind, target);
    let unknown = target == Target::Unknown;
    let pick = |known: &str, ghost: &str| {
        if unknown {
            ghost.to_string()
        } else {
            known.to_string()
        }
    };
    let done = pick(&set.done, &fx.ghost_import);
    let done_file = pick(&set.done_file, &fx.ghost_file);
    let draft = pick(&set.draft, &fx.ghost_import);
    let draft_file = pick(&set.draft_file, &fx.ghost_file);
    let upload = pick(&set.upload, &fx.ghost_upload);
    let org = target.org();
    let member = kind == Kind::Member;
    let mut wrong = Vec::<String>::new();
    match rpc {
        Rpc::CreateImport => {
            let import = c
                .create_import(pb::CreateImportRequest {
                    organization_id: org.clone(),
                    failure_policy: pb::FailurePolicy::ImportValidRows as i32,
                    note: "access matrix".into(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .import
                .unwrap_or_default();
            if import.organization_id != org {
                wrong.push(format!("created in {}", import.organization_id));
            }
        }
        Rpc::UploadFile => {
            let bytes = valid_csv(&format!("{}U", set.prefix));
            let messages = vec![
                pb::UploadFileRequest {
                    payload: Some(pb::upload_file_request::Payload::Header(pb::FileHeader {
                        import_id: draft.clone(),
                        file_name: "access-upload.csv".into(),
                        import_type: "cases".into(),
                        declared_size_bytes: bytes.len() as i64,
                        ..Default::default()
                    })),
                },
                pb::UploadFileRequest {
                    payload: Some(pb::upload_file_request::Payload::Chunk(bytes)),
                },
            ];
            let file = c
                .upload_file(tokio_stream::iter(messages))
                .await?
                .into_inner()
                .file
                .unwrap_or_default();
            if file.row_count != 2 {
                wrong.push(format!("stored {} rows", file.row_count));
            }
        }
        Rpc::CreateUpload => {
            let bytes = valid_csv(&format!("{}C", set.prefix));
            let upload = c
                .create_upload(pb::CreateUploadRequest {
                    header: Some(pb::FileHeader {
                        import_id: draft.clone(),
                        file_name: "access-resumable.csv".into(),
                        import_type: "cases".into(),
                        declared_size_bytes: bytes.len() as i64,
                        ..Default::default()
                    }),
                    declared_sha256: String::new(),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .upload
                .unwrap_or_default();
            if upload.import_id != draft || upload.committed_bytes != 0 {
                wrong.push(format!("began {upload:?}"));
            }
        }
        Rpc::WriteUploadPart => {
            let bytes = upload_csv(&set.prefix);
            let size = bytes.len() as i64;
            let committed = c
                .write_upload_part(pb::WriteUploadPartRequest {
                    upload_id: upload.clone(),
                    offset: 0,
                    data: bytes,
                })
                .await?
                .into_inner()
                .committed_bytes;
            if committed != size {
                wrong.push(format!("committed {committed} of {size} bytes"));
            }
        }
        Rpc::GetUpload => {
            let got = c
                .get_upload(pb::GetUploadRequest {
                    upload_id: upload.clone(),
                })
                .await?
                .into_inner()
                .upload
                .unwrap_or_default();
            if got.id != upload {
                wrong.push(format!("got upload {}", got.id));
            }
        }
        Rpc::CompleteUpload => {
            let file = c
                .complete_upload(pb::CompleteUploadRequest {
                    upload_id: upload.clone(),
                })
                .await?
                .into_inner()
                .file
                .unwrap_or_default();
            if file.row_count != 2 {
                wrong.push(format!("attached {} rows", file.row_count));
            }
        }
        Rpc::AbortUpload => {
            c.abort_upload(pb::AbortUploadRequest {
                upload_id: upload.clone(),
            })
            .await?;
        }
        Rpc::RemoveFile => {
            let import = c
                .remove_file(pb::RemoveFileRequest {
                    import_id: draft.clone(),
                    file_id: draft_file.clone(),
                })
                .await?
                .into_inner()
                .import
                .unwrap_or_default();
            if import.files.iter().any(|f| f.id == draft_file) {
                wrong.push("the file is still there".into());
            }
        }
        Rpc::AnalyzeImport => {
            let import = c
                .analyze_import(pb::AnalyzeImportRequest {
                    import_id: draft.clone(),
                })
                .await?
                .into_inner()
                .import
                .unwrap_or_default();
            let job = import.analysis_job.unwrap_or_default();
            if job.state == pb::AnalysisJobState::Unspecified as i32
                || job.state == pb::AnalysisJobState::Failed as i32
            {
                wrong.push(format!("the analysis was not queued: {job:?}"));
            }
            // A worker runs it; StartImport later needs the report.
            let until = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let now = c
                    .get_import(pb::GetImportRequest {
                        import_id: draft.clone(),
                    })
                    .await?
                    .into_inner()
                    .import
                    .unwrap_or_default();
                let job = now.analysis_job.unwrap_or_default();
                if job.state == pb::AnalysisJobState::Done as i32 {
                    break;
                }
                if job.state == pb::AnalysisJobState::Failed as i32
                    || std::time::Instant::now() > until
                {
                    wrong.push(format!("the analysis did not finish: {job:?}"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Rpc::StartImport => {
            let import = c
                .start_import(pb::StartImportRequest {
                    import_id: draft.clone(),
                    failure_policy: 0,
                })
                .await?
                .into_inner()
                .import
                .unwrap_or_default();
            if import.state == pb::ImportState::Draft as i32 {
                wrong.push("still a draft".into());
            }
        }
        Rpc::ListImportTypes => {
            let types = c
                .list_import_types(pb::ListImportTypesRequest {})
                .await?
                .into_inner()
                .import_types;
            if !types.iter().any(|t| t.key == "cases") {
                wrong.push("no cases type".into());
            }
        }
        Rpc::GetImportTemplate => {
            let template = c
                .get_import_template(pb::GetImportTemplateRequest {
                    import_type: "cases".into(),
                })
                .await?
                .into_inner();
            if !template.content.starts_with(b"case_number") {
                wrong.push("not the cases template".into());
            }
        }
        Rpc::GetImport => {
            let import = c
                .get_import(pb::GetImportRequest {
                    import_id: done.clone(),
                })
                .await?
                .into_inner()
                .import
                .unwrap_or_default();
            if import.id != done {
                wrong.push(format!("got import {}", import.id));
            }
        }
        Rpc::ListImports => {
            let imports = c
                .list_imports(pb::ListImportsRequest {
                    organization_id: org.clone(),
                    page_size: 500,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .imports;
            let orgs: std::collections::BTreeSet<&str> =
                imports.iter().map(|i| i.organization_id.as_str()).collect();
            let want: Vec<&str> = match (target, member) {
                // A plain user asking for every organization gets their own.
                (Target::Any, true) | (Target::Own, _) => vec!["1042"],
                (Target::Any, false) => vec!["1042", "2001"],
                (Target::Other, _) => vec!["2001"],
                (Target::Unknown, _) => vec![],
            };
            if orgs.iter().copied().collect::<Vec<_>>() != want {
                wrong.push(format!("imports of organizations {orgs:?}, not {want:?}"));
            }
        }
        Rpc::WatchImport => {
            let event = first(
                c.watch_import(pb::WatchImportRequest {
                    import_id: done.clone(),
                })
                .await,
            )
            .await?;
            if event.kind != pb::WatchEventKind::Snapshot as i32
                || event.import.as_ref().map(|i| i.id.as_str()) != Some(done.as_str())
            {
                wrong.push("the first event is not the import's snapshot".into());
            }
        }
        Rpc::StopImport => {
            c.stop_import(pb::StopImportRequest {
                import_id: done.clone(),
                reason: "access matrix".into(),
            })
            .await?;
        }
        Rpc::PauseImports => {
            c.pause_imports(pb::PauseImportsRequest {
                organization_id: org.clone(),
                reason: "access matrix".into(),
            })
            .await?;
        }
        Rpc::ResumeImports => {
            c.resume_imports(pb::ResumeImportsRequest {
                organization_id: org.clone(),
            })
            .await?;
        }
        Rpc::ListPauses => {
            c.list_pauses(pb::ListPausesRequest {}).await?;
        }
        Rpc::GetQueueMonitor => {
            c.get_queue_monitor(pb::GetQueueMonitorRequest::default())
                .await?;
        }
        Rpc::ListWorkers => {
            c.list_workers(pb::ListWorkersRequest {}).await?;
        }
        Rpc::ListDeadLetters => {
            c.list_dead_letters(pb::ListDeadLettersRequest::default())
                .await?;
        }
        // No chunk of that id exists: staff are told so.
        Rpc::RequeueDeadLetters => {
            c.requeue_dead_letters(pb::RequeueDeadLettersRequest {
                chunk_ids: vec![NO_CHUNK],
            })
            .await?;
        }
        Rpc::DiscardDeadLetters => {
            c.discard_dead_letters(pb::DiscardDeadLettersRequest {
                chunk_ids: vec![NO_CHUNK],
                reason: "access matrix".into(),
            })
            .await?;
        }
        Rpc::ListChunkFailures => {
            c.list_chunk_failures(pb::ListChunkFailuresRequest {
                import_id: done.clone(),
                ..Default::default()
            })
            .await?;
        }
        Rpc::ListRowErrors => {
            let errors = c
                .list_row_errors(pb::ListRowErrorsRequest {
                    import_id: done.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .row_errors;
            if errors.iter().map(|e| e.row).collect::<Vec<_>>() != [2] {
                wrong.push(format!("{} row errors", errors.len()));
            }
        }
        Rpc::DownloadResults => {
            let piece = first(
                c.download_results(pb::DownloadResultsRequest {
                    import_id: done.clone(),
                    file_id: done_file.clone(),
                    kind: pb::ResultKind::FailedRows as i32,
                })
                .await,
            )
            .await?;
            if !String::from_utf8_lossy(&piece.chunk).contains("not a date") {
                wrong.push("the failed row is not in the download".into());
            }
        }
        Rpc::UpdateRows => {
            let edited = c
                .update_rows(pb::UpdateRowsRequest {
                    import_id: done.clone(),
                    file_id: done_file.clone(),
                    rows: vec![pb::RowEdit {
                        row: 2,
                        cells: [("date_of_death".to_string(), "2024-03-04".to_string())]
                            .into_iter()
                            .collect(),
                    }],
                })
                .await?
                .into_inner()
                .rows_edited;
            if edited != 1 {
                wrong.push(format!("{edited} rows edited"));
            }
        }
        Rpc::UploadCorrections => {
            let content = format!(
                "row,case_number,deceased_first_name,deceased_last_name,date_of_death\n\
                 2,{}2,Ben,Roe,2024-03-05\n",
                set.prefix
            );
            let corrected = c
                .upload_corrections(pb::UploadCorrectionsRequest {
                    import_id: done.clone(),
                    file_id: done_file.clone(),
                    content: content.into_bytes(),
                })
                .await?
                .into_inner()
                .rows_corrected;
            if corrected != 1 {
                wrong.push(format!("{corrected} rows corrected"));
            }
        }
        Rpc::RetryFailedRows => {
            let retried = c
                .retry_failed_rows(pb::RetryFailedRowsRequest {
                    import_id: done.clone(),
                })
                .await?
                .into_inner()
                .rows_retried;
            if retried != 1 {
                wrong.push(format!("{retried} rows retried"));
            }
        }
        Rpc::GetRecordSource => {
            let source = c
                .get_record_source(pb::GetRecordSourceRequest {
                    organization_id: org.clone(),
                    import_type: "cases".into(),
                    key: vec![format!("{}1", set.prefix)],
                })
                .await?
                .into_inner();
            if source.import_id != done || source.row != 1 {
                wrong.push(format!("source {} row {}", source.import_id, source.row));
            }
        }
        Rpc::ListAuditEvents => {
            c.list_audit_events(pb::ListAuditEventsRequest::default())
                .await?;
        }
        // Validated only: nothing is saved, so every caller's call is alike.
        Rpc::CreateProfile => {
            c.create_profile(pb::CreateProfileRequest {
                profile: Some(pb::ImportProfile {
                    name: "Access matrix".into(),
                    import_type: "cases".into(),
                    ..Default::default()
                }),
                validate_only: true,
                ..Default::default()
            })
            .await?;
        }
        Rpc::UpdateProfile => {
            c.update_profile(pb::UpdateProfileRequest {
                profile: Some(pb::ImportProfile {
                    id: fx.ghost_import.clone(),
                    name: "Access matrix".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?;
        }
        Rpc::GetProfile => {
            c.get_profile(pb::GetProfileRequest {
                profile_id: fx.ghost_import.clone(),
                version: 0,
            })
            .await?;
        }
        Rpc::ListProfiles => {
            c.list_profiles(pb::ListProfilesRequest::default()).await?;
        }
        Rpc::DeleteProfile => {
            c.delete_profile(pb::DeleteProfileRequest {
                profile_id: fx.ghost_import.clone(),
            })
            .await?;
        }
        Rpc::SuggestProfiles => {
            c.suggest_profiles(pb::SuggestProfilesRequest {
                import_type: "cases".into(),
                headers: vec!["Case No".into()],
                ..Default::default()
            })
            .await?;
        }
        Rpc::ListOrganizations => {
            let query = if target == Target::Other {
                OTHER_ORG.to_string()
            } else {
                String::new()
            };
            let mut ids: Vec<String> = c
                .list_organizations(pb::ListOrganizationsRequest {
                    query,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .organizations
                .into_iter()
                .map(|o| o.id)
                .collect();
            ids.sort();
            let want: Vec<&str> = match (target, member) {
                (Target::Other, true) => vec![],
                (Target::Other, false) => vec!["2001"],
                (_, true) => vec!["1042"],
                (_, false) => vec!["1042", "2001"],
            };
            if ids != want {
                wrong.push(format!("organizations {ids:?}, not {want:?}"));
            }
        }
    }
    Ok(wrong.join("; "))
}

const UA: Code = Code::Unauthenticated;
const OK: Code = Code::Ok;
const PD: Code = Code::PermissionDenied;
const NF: Code = Code::NotFound;
const FP: Code = Code::FailedPrecondition;
/// A chunk id no test ever creates.
const NO_CHUNK: i64 = 999_999_999;

/// The matrix, in the order the rows run (ADMIN and DEVELOPER change their
/// own sets: uploads before removals before analyses before starts; edits
/// and corrections before the retry, which runs last).
#[rustfmt::skip]
fn matrix() -> Vec<(Rpc, Target, [Code; 7])> {
    use Rpc::*;
    use Target::*;
    vec![
        //                                     none garbage foreign expired MEMBER ADMIN DEVELOPER
        (ListImportTypes,   Any,     [UA, UA, UA, UA, OK, OK, OK]),
        (GetImportTemplate, Any,     [UA, UA, UA, UA, OK, OK, OK]),
        (ListOrganizations, Any,     [UA, UA, UA, UA, OK, OK, OK]),
        (ListOrganizations, Other,   [UA, UA, UA, UA, OK, OK, OK]),
        (GetImport,         Own,     [UA, UA, UA, UA, OK, OK, OK]),
        (GetImport,         Other,   [UA, UA, UA, UA, NF, OK, OK]),
        (GetImport,         Unknown, [UA, UA, UA, UA, NF, NF, NF]),
        (ListImports,       Any,     [UA, UA, UA, UA, OK, OK, OK]),
        (ListImports,       Own,     [UA, UA, UA, UA, OK, OK, OK]),
        (ListImports,       Other,   [UA, UA, UA, UA, NF, OK, OK]),
        (ListImports,       Unknown, [UA, UA, UA, UA, NF, NF, NF]),
        (WatchImport,       Own,     [UA, UA, UA, UA, OK, OK, OK]),
        (WatchImport,       Other,   [UA, UA, UA, UA, NF, OK, OK]),
        (WatchImport,       Unknown, [UA, UA, UA, UA, NF, NF, NF]),
        (ListRowErrors,     Own,     [UA, UA, UA, UA, OK, OK, OK]),
        (ListRowErrors,     Other,   [UA, UA, UA, UA, NF, OK, OK]),
        (ListRowErrors,     Unknown, [UA, UA, UA, UA, NF, NF, NF]),
        (DownloadResults,   Own,     [UA, UA, UA, UA, OK, OK, OK]),
        (DownloadResults,   Other,   [UA, UA, UA, UA, NF, OK, OK]),
        (DownloadResults,   Unknown, [UA, UA, UA, UA, NF, NF, NF]),
        (GetRecordSource,   Own,     [UA, UA, UA, UA, OK, OK, OK]),
        (GetRecordSource,   Other,   [UA, UA, UA, UA, NF, OK, OK]),
        (GetRecordSource,   Unknown, [UA, UA, UA, UA, NF, NF, NF]),
        (ListChunkFailures, Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (ListChunkFailures, Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (ListAuditEvents,   Any,     [UA, UA, UA, UA, PD, OK, OK]),
        (ListPauses,        Any,     [UA, UA, UA, UA, PD, OK, OK]),
        (GetQueueMonitor,   Any,     [UA, UA, UA, UA, PD, OK, OK]),
        (ListWorkers,       Any,     [UA, UA, UA, UA, PD, OK, OK]),
        (ListDeadLetters,   Any,     [UA, UA, UA, UA, PD, OK, OK]),
        (RequeueDeadLetters, Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (DiscardDeadLetters, Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (CreateProfile,     Any,     [UA, UA, UA, UA, PD, OK, OK]),
        (UpdateProfile,     Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (GetProfile,        Unknown, [UA, UA, UA, UA, NF, NF, NF]),
        (ListProfiles,      Any,     [UA, UA, UA, UA, OK, OK, OK]),
        (DeleteProfile,     Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (SuggestProfiles,   Any,     [UA, UA, UA, UA, OK, OK, OK]),
        (CreateImport,      Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (CreateImport,      Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (CreateImport,      Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (UploadFile,        Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (UploadFile,        Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (UploadFile,        Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (CreateUpload,      Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (CreateUpload,      Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (CreateUpload,      Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (WriteUploadPart,   Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (WriteUploadPart,   Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (WriteUploadPart,   Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (GetUpload,         Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (GetUpload,         Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (GetUpload,         Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (CompleteUpload,    Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (CompleteUpload,    Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (CompleteUpload,    Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        // The completed upload: authorised callers learn it has ended.
        (AbortUpload,       Own,     [UA, UA, UA, UA, PD, FP, FP]),
        (AbortUpload,       Other,   [UA, UA, UA, UA, PD, FP, FP]),
        (AbortUpload,       Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (RemoveFile,        Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (RemoveFile,        Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (RemoveFile,        Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (AnalyzeImport,     Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (AnalyzeImport,     Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (AnalyzeImport,     Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (StartImport,       Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (StartImport,       Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (StartImport,       Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        // The completed import: authorised callers learn it has ended.
        (StopImport,        Own,     [UA, UA, UA, UA, PD, FP, FP]),
        (StopImport,        Other,   [UA, UA, UA, UA, PD, FP, FP]),
        (StopImport,        Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (PauseImports,      Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (PauseImports,      Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (PauseImports,      Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (ResumeImports,     Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (ResumeImports,     Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (ResumeImports,     Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (UpdateRows,        Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (UpdateRows,        Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (UpdateRows,        Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (UploadCorrections, Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (UploadCorrections, Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (UploadCorrections, Unknown, [UA, UA, UA, UA, PD, NF, NF]),
        (RetryFailedRows,   Own,     [UA, UA, UA, UA, PD, OK, OK]),
        (RetryFailedRows,   Other,   [UA, UA, UA, UA, PD, OK, OK]),
        (RetryFailedRows,   Unknown, [UA, UA, UA, UA, PD, NF, NF]),
    ]
}

fn short(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Unauthenticated => "UNAUTHENTICATED",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::NotFound => "NOT_FOUND",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::Internal => "INTERNAL",
        Code::Unknown => "UNKNOWN",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::Unavailable => "UNAVAILABLE",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::Aborted => "ABORTED",
        _ => "OTHER",
    }
}

/// What a NOT_FOUND looks like with the ids taken out: code, ErrorInfo
/// reason, domain and metadata keys (with the resource kind), and message.
fn shape(status: &Status, ids: &[String]) -> String {
    let details = status.get_error_details();
    let (reason, domain, mut metadata) = details
        .error_info()
        .map(|i| {
            (
                i.reason.clone(),
                i.domain.clone(),
                i.metadata
                    .iter()
                    .map(|(k, v)| {
                        let v = if k == "id" { "<id>".into() } else { v.clone() };
                        format!("{k}={v}")
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .unwrap_or_default();
    metadata.sort();
    let mut message = status.message().to_string();
    for id in ids {
        message = message.replace(id.as_str(), "<id>");
    }
    format!(
        "{:?} | reason {reason} | domain {domain} | {metadata:?} | {message}",
        status.code()
    )
}

/// One cell as it came out: the code (`None` when the call did not end in
/// time), what was wrong with an OK answer, and the status.
struct Cell {
    code: Option<Code>,
    wrong: String,
    status: Option<Status>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_enforces_the_access_matrix() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    env.organization(OTHER_ORG).await?;
    let mut admin = env.client().await?;

    // Fixtures: in each organization, a canonical set (for MEMBER and the
    // unauthenticated columns) and one set each for ADMIN and DEVELOPER.
    let mut sets = Vec::new();
    for (org, prefix) in [
        (OWN_ORG, "K"),
        (OTHER_ORG, "L"),
        (OWN_ORG, "AA"),
        (OTHER_ORG, "AB"),
        (OWN_ORG, "DA"),
        (OTHER_ORG, "DB"),
    ] {
        sets.push(make_set(&env, &mut admin, org, prefix).await?);
    }
    for set in &sets {
        settle(&mut admin, set).await?;
    }
    let mut sets = sets.into_iter();
    let mut two = || -> anyhow::Result<[Set; 2]> {
        Ok([sets.next().context("a set")?, sets.next().context("a set")?])
    };
    let fx = Fixtures {
        canonical: two()?,
        admin: two()?,
        developer: two()?,
        ghost_import: uuid::Uuid::now_v7().to_string(),
        ghost_file: uuid::Uuid::now_v7().to_string(),
        ghost_upload: uuid::Uuid::now_v7().to_string(),
    };

    // Every RPC of the proto has rows.
    let proto = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proto/passare/imports/v1/imports.proto"
    ))?;
    let rpcs: Vec<String> = proto
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .filter_map(|l| l.split('(').next())
        .map(|n| n.trim().to_string())
        .collect();
    let matrix = matrix();
    let mut mismatches = Vec::new();
    for name in &rpcs {
        if !matrix.iter().any(|(rpc, _, _)| format!("{rpc:?}") == *name) {
            mismatches.push(format!("{name}: no row in the matrix"));
        }
    }
    anyhow::ensure!(rpcs.len() == 39, "the proto names {rpcs:?}");

    let mut callers = Vec::new();
    for kind in KINDS {
        callers.push(caller(&env, kind.token(&env)?).await?);
    }

    let started = std::time::Instant::now();
    let mut cells: Vec<Vec<Cell>> = Vec::new();
    for (rpc, target, _) in &matrix {
        let mut row = Vec::new();
        for (kind, c) in KINDS.iter().zip(callers.iter_mut()) {
            let cell =
                match tokio::time::timeout(CALL_LIMIT, call(*rpc, *target, *kind, c, &fx)).await {
                    Err(_) => Cell {
                        code: None,
                        wrong: format!("no answer within {CALL_LIMIT:?}"),
                        status: None,
                    },
                    Ok(Ok(wrong)) => Cell {
                        code: Some(Code::Ok),
                        wrong,
                        status: None,
                    },
                    Ok(Err(status)) => Cell {
                        code: Some(status.code()),
                        wrong: String::new(),
                        status: Some(status),
                    },
                };
            row.push(cell);
        }
        cells.push(row);
    }
    let elapsed = started.elapsed();

    // The matrix as it came out; a wrong cell shows what was expected.
    let widths = [18usize, 9, 17, 17, 17, 17, 19, 19, 19];
    let mut out = String::new();
    let header: Vec<&str> = ["RPC", "target"]
        .into_iter()
        .chain(KINDS.iter().map(|k| k.label()))
        .collect();
    for (h, w) in header.iter().zip(widths) {
        out.push_str(&format!("{h:<w$} "));
    }
    out.push('\n');
    for ((rpc, target, expected), row) in matrix.iter().zip(&cells) {
        out.push_str(&format!(
            "{:<w0$} {:<w1$} ",
            format!("{rpc:?}"),
            target.label(),
            w0 = widths[0],
            w1 = widths[1]
        ));
        for (i, (cell, want)) in row.iter().zip(expected).enumerate() {
            let got = cell.code.map_or("TIMEOUT", short);
            let text = if cell.code == Some(*want) && cell.wrong.is_empty() {
                got.to_string()
            } else if cell.code == Some(*want) {
                format!("{got}(!)")
            } else {
                format!("{got}≠{}", short(*want))
            };
            out.push_str(&format!("{text:<w$} ", w = widths[i + 2]));
            let kind = KINDS[i];
            if cell.code != Some(*want) {
                mismatches.push(format!(
                    "{rpc:?} {} as {}: expected {want:?}, got {}",
                    target.label(),
                    kind.label(),
                    match (&cell.code, &cell.status) {
                        (_, Some(s)) => format!("{:?}: {}", s.code(), s.message()),
                        (Some(code), None) => format!("{code:?}"),
                        (None, None) => cell.wrong.clone(),
                    }
                ));
            } else if !cell.wrong.is_empty() {
                mismatches.push(format!(
                    "{rpc:?} {} as {}: OK, but {}",
                    target.label(),
                    kind.label(),
                    cell.wrong
                ));
            }
            // Every NOT_FOUND names its reason NOT_FOUND.
            if let Some(s) = &cell.status
                && s.code() == Code::NotFound
            {
                let reason = s
                    .get_error_details()
                    .error_info()
                    .map(|i| i.reason.clone())
                    .unwrap_or_default();
                if reason != "NOT_FOUND" {
                    mismatches.push(format!(
                        "{rpc:?} {} as {}: NOT_FOUND with ErrorInfo reason {reason:?}",
                        target.label(),
                        kind.label()
                    ));
                }
            }
        }
        out.push('\n');
    }
    println!(
        "access matrix ({} calls in {elapsed:.1?}; X≠Y: got X, expected Y; (!): right code, wrong answer)\n{out}",
        matrix.len() * KINDS.len()
    );

    // What MEMBER is told about another organization's import is what it
    // is told about one that does not exist.
    let ids = fx.ids();
    let member = KINDS
        .iter()
        .position(|k| *k == Kind::Member)
        .context("MEMBER column")?;
    for ((rpc, target, _), row) in matrix.iter().zip(&cells) {
        if *target != Target::Other {
            continue;
        }
        let unknown = matrix
            .iter()
            .zip(&cells)
            .find(|((r, t, _), _)| r == rpc && *t == Target::Unknown);
        let (Some(other), Some((_, unknown_row))) = (&row[member].status, unknown) else {
            continue;
        };
        let Some(unknown) = &unknown_row[member].status else {
            continue;
        };
        if other.code() != Code::NotFound {
            continue;
        }
        let (a, b) = (shape(other, &ids), shape(unknown, &ids));
        println!("{rpc:?} as MEMBER, org 2001: {a}\n{rpc:?} as MEMBER, unknown:  {b}");
        if a != b {
            mismatches.push(format!(
                "{rpc:?} as MEMBER: another organization's NOT_FOUND differs from an unknown one's:\n    org 2001: {a}\n    unknown:  {b}"
            ));
        }
    }

    // The refused calls changed nothing.
    for set in &fx.canonical {
        let done = get(&mut admin, &set.done).await?;
        if done.state != pb::ImportState::CompletedWithErrors as i32 || done.attempt != 1 {
            mismatches.push(format!(
                "canonical import {} of {} changed: state {:?}, attempt {}",
                set.done,
                set.org,
                pb::ImportState::try_from(done.state),
                done.attempt
            ));
        }
        let failed = failed_rows(&mut admin, &set.done, &set.done_file).await?;
        if !failed.contains("not a date") || failed.contains("2024-03-0") {
            mismatches.push(format!(
                "the failed row of {} of {} was edited:\n{failed}",
                set.done, set.org
            ));
        }
        let draft = get(&mut admin, &set.draft).await?;
        if draft.state != pb::ImportState::Draft as i32
            || draft.files.len() != 2
            || draft.analysis.is_some()
        {
            mismatches.push(format!(
                "canonical draft {} of {} changed: state {:?}, {} files, analysed {}",
                set.draft,
                set.org,
                pb::ImportState::try_from(draft.state),
                draft.files.len(),
                draft.analysis.is_some()
            ));
        }
    }
    let pauses = admin
        .list_pauses(pb::ListPausesRequest {})
        .await?
        .into_inner()
        .pauses;
    if !pauses.is_empty() {
        mismatches.push(format!("pauses remain: {pauses:?}"));
    }
    for actor in [MEMBER.id, INTRUDER.id] {
        let events = pages::collect_all(
            &mut admin,
            pb::ListAuditEventsRequest {
                actor: actor.into(),
                ..Default::default()
            },
        )
        .await?;
        if !events.is_empty() {
            mismatches.push(format!(
                "{actor} changed something: {:?}",
                events.iter().map(|e| &e.action).collect::<Vec<_>>()
            ));
        }
        let imports = pages::collect_all(
            &mut admin,
            pb::ListImportsRequest {
                requested_by: actor.into(),
                ..Default::default()
            },
        )
        .await?;
        if !imports.is_empty() {
            mismatches.push(format!("{actor} created {} imports", imports.len()));
        }
    }

    env.finish().await?;
    assert!(
        mismatches.is_empty(),
        "{} wrong cells or side effects:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
    Ok(())
}

/// The FAILED_ROWS download of a file, as text.
async fn failed_rows(
    client: &mut client::Client,
    import_id: &str,
    file_id: &str,
) -> anyhow::Result<String> {
    let file = download(client, import_id, file_id, pb::ResultKind::FailedRows).await?;
    Ok(String::from_utf8(file.bytes)?)
}

/// Whether every failed attempt shows developer details (`true`) or none
/// does (`false`); describes what is wrong otherwise.
fn details(failures: &[pb::ChunkFailure], shown: bool, what: &str) -> Option<String> {
    if failures.is_empty() {
        return Some(format!("{what}: no chunk failure"));
    }
    let bad: Vec<String> = failures
        .iter()
        .filter(|f| (f.backtrace.is_empty() || f.causes.is_empty()) == shown)
        .map(|f| {
            format!(
                "attempt {} ({}): backtrace {} chars, {} causes",
                f.attempt,
                f.error_kind,
                f.backtrace.len(),
                f.causes.len()
            )
        })
        .collect();
    let hidden = failures
        .iter()
        .filter(|f| !f.backtrace.is_empty() || !f.causes.is_empty())
        .count();
    if shown && !bad.is_empty() {
        Some(format!("{what}: developer details missing: {bad:?}"))
    } else if !shown && hidden > 0 {
        Some(format!(
            "{what}: {hidden} of {} failures show a backtrace or causes (first backtrace line: {:?}, causes: {:?})",
            failures.len(),
            failures
                .iter()
                .find(|f| !f.backtrace.is_empty())
                .and_then(|f| f.backtrace.lines().next()),
            failures
                .iter()
                .find(|f| !f.causes.is_empty())
                .map(|f| &f.causes)
        ))
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developers_alone_see_backtraces() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut admin = env.client().await?;
    let mut developer = env.client_as(&DEVELOPER).await?;
    let mut member = env.client_as(&MEMBER).await?;
    // A developer by role rather than by the `developer` claim.
    let now = chrono::Utc::now().timestamp() as u64;
    let role_token = env.signed(&Claims {
        sub: "dev-by-role".into(),
        name: "Developer by role".into(),
        email: "dev-by-role@passare.com".into(),
        roles: vec!["developer".into()],
        exp: now + 3600,
        iat: now,
        ..Claims::default()
    })?;
    let mut by_role = env.client_with_token(&role_token).await?;

    // The file's bytes vanish after the analysis: its chunk fails
    // permanently (storage_missing) and the import goes on without it.
    let (id, file) = env
        .draft_with_file(
            &mut admin,
            OWN_ORG,
            pb::FailurePolicy::ImportValidRows,
            "vanishing.csv",
            &cases_csv(20, 5)?,
        )
        .await?;
    let report = files::analyze(&mut admin, &id).await?;
    anyhow::ensure!(!report.blocking, "{report:#?}");
    let stored = env
        .config
        .storage_dir
        .join("imports")
        .join(&id)
        .join(&file.id);
    std::fs::remove_file(&stored).with_context(|| format!("removing {}", stored.display()))?;
    start(&mut admin, &id).await.map_err(client::describe)?;
    let done = wait_until(&mut admin, &id, Duration::from_secs(120), |i| {
        client::is_terminal(i.state)
    })
    .await?;
    assert_eq!(
        done.state,
        pb::ImportState::CompletedWithErrors as i32,
        "{done:#?}"
    );

    let mut problems = Vec::new();
    let mut check = |found: Option<String>| problems.extend(found);

    // GetImport.
    let as_dev = get(&mut developer, &id).await?;
    assert!(
        as_dev
            .chunk_failures
            .iter()
            .any(|f| f.error_kind == "storage_missing"
                && f.outcome == pb::ChunkFailureOutcome::Failed as i32),
        "{:#?}",
        as_dev.chunk_failures
    );
    check(details(
        &as_dev.chunk_failures,
        true,
        "GetImport as DEVELOPER",
    ));
    let as_role = get(&mut by_role, &id).await?;
    check(details(
        &as_role.chunk_failures,
        true,
        "GetImport as a developer by role",
    ));
    let as_admin = get(&mut admin, &id).await?;
    check(details(
        &as_admin.chunk_failures,
        false,
        "GetImport as ADMIN",
    ));
    let as_member = get(&mut member, &id).await?;
    check(details(
        &as_member.chunk_failures,
        false,
        "GetImport as MEMBER",
    ));

    // WatchImport (the import has ended: the snapshot is the only event).
    for (who, client, shown) in [
        ("DEVELOPER", &mut developer, true),
        ("ADMIN", &mut admin, false),
        ("MEMBER", &mut member, false),
    ] {
        let events = tokio::time::timeout(CALL_LIMIT, watch_all(client, &id)).await??;
        let snapshot = events
            .first()
            .and_then(|e| e.import.clone())
            .context("a snapshot")?;
        check(details(
            &snapshot.chunk_failures,
            shown,
            &format!("WatchImport as {who}"),
        ));
    }

    // ListImports.
    for (who, client, shown) in [
        ("DEVELOPER", &mut developer, true),
        ("ADMIN", &mut admin, false),
        ("MEMBER", &mut member, false),
    ] {
        let listed = pages::collect_all(
            client,
            pb::ListImportsRequest {
                organization_id: OWN_ORG.to_string(),
                ..Default::default()
            },
        )
        .await?;
        let import = listed
            .iter()
            .find(|i| i.id == id)
            .with_context(|| format!("{who} lists the import"))?;
        check(details(
            &import.chunk_failures,
            shown,
            &format!("ListImports as {who}"),
        ));
    }

    // ListChunkFailures: staff only, details for developers only.
    let dev_failures = chunk_failures(&mut developer, &id).await?;
    check(details(
        &dev_failures,
        true,
        "ListChunkFailures as DEVELOPER",
    ));
    let role_failures = chunk_failures(&mut by_role, &id).await?;
    check(details(
        &role_failures,
        true,
        "ListChunkFailures as a developer by role",
    ));
    let admin_failures = chunk_failures(&mut admin, &id).await?;
    check(details(
        &admin_failures,
        false,
        "ListChunkFailures as ADMIN",
    ));
    let refused = member
        .list_chunk_failures(pb::ListChunkFailuresRequest {
            import_id: id.clone(),
            ..Default::default()
        })
        .await
        .err()
        .map(|s| s.code());
    if refused != Some(Code::PermissionDenied) {
        problems.push(format!(
            "ListChunkFailures as MEMBER: expected PermissionDenied, got {refused:?}"
        ));
    }

    env.finish().await?;
    assert!(
        problems.is_empty(),
        "developer details shown wrongly:\n  {}",
        problems.join("\n  ")
    );
    Ok(())
}
