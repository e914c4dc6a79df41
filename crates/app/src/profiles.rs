//! Saved import profiles (docs/transform-rules.md): validated when saved,
//! versioned, audited; chosen when a file is uploaded or suggested from a
//! file's header.

use passare_imports_domain::catalog::{self, ImportTypeDef, normalize_header};
use passare_imports_domain::transform::{AppliedProfile, Rule, compile};
use passare_imports_store::entities::imports;
use passare_imports_store::profiles::{
    self as records, Content, Created, Profile, ProfileFilter, Updated,
};
use uuid::Uuid;

use crate::App;
use crate::error::{ApiError, FieldViolation};
use crate::history;
use crate::identity::Caller;

/// Longest profile name, and description.
const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 2_000;
/// Most mapping entries, and source headers, of a profile.
const MAX_HEADERS: usize = 500;

/// A profile as a caller sends it.
#[derive(Debug, Clone)]
pub struct ProfileInput {
    pub name: String,
    pub description: String,
    pub column_mapping: Vec<(String, String)>,
    pub source_headers: Vec<String>,
    pub rules: Vec<Rule>,
}

/// Validates a profile for `def`: every violation, each naming its field
/// (`profile.rules[2]`), in one INVALID_ARGUMENT.
pub fn validate(def: &'static ImportTypeDef, p: &ProfileInput) -> Result<Content, ApiError> {
    let mut violations = Vec::new();
    let mut bad = |field: String, description: String| {
        violations.push(FieldViolation { field, description });
    };
    let name = p.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        bad(
            "profile.name".into(),
            format!("must be 1 to {MAX_NAME} characters"),
        );
    }
    if p.description.chars().count() > MAX_DESCRIPTION {
        bad(
            "profile.description".into(),
            format!("is longer than {MAX_DESCRIPTION} characters"),
        );
    }
    if p.column_mapping.len() > MAX_HEADERS || p.source_headers.len() > MAX_HEADERS {
        bad(
            "profile".into(),
            format!("a profile maps and names at most {MAX_HEADERS} headers"),
        );
    }
    for (i, (header, column)) in p.column_mapping.iter().enumerate() {
        if header.trim().is_empty() || header.chars().count() > 1_000 {
            bad(
                format!("profile.column_mapping[{i}].header"),
                "must be 1 to 1000 characters".into(),
            );
        }
        if def.column_named(column).is_none() {
            bad(
                format!("profile.column_mapping[{i}].column"),
                format!("{column:?} is not a column of {}", def.display_name),
            );
        }
    }
    if let Err(errors) = compile(def, &p.source_headers, &p.rules) {
        for e in errors {
            let field = match e.rule {
                0 => "profile.rules".to_string(),
                n => format!("profile.rules[{}]", n - 1),
            };
            bad(field, e.to_string());
        }
    }
    if !violations.is_empty() {
        let first = violations[0].description.clone();
        let more = match violations.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Err(ApiError::InvalidArgument {
            reason: "INVALID_PROFILE",
            message: format!("the profile cannot be saved: {first}{more}"),
            violations,
        });
    }
    Ok(Content {
        name: name.to_string(),
        description: p.description.trim().to_string(),
        column_mapping: p.column_mapping.clone(),
        source_headers: p
            .source_headers
            .iter()
            .map(|h| h.trim().to_string())
            .collect(),
        rules: serde_json::to_value(&p.rules)
            .map_err(|e| ApiError::Internal(format!("encoding rules: {e}")))?,
    })
}

fn name_taken(name: &str) -> ApiError {
    ApiError::AlreadyExists {
        reason: "PROFILE_NAME_TAKEN",
        message: format!(
            "another profile of this import type and organization is named {name:?}; choose another name"
        ),
        violations: vec![FieldViolation {
            field: "profile.name".into(),
            description: "is taken".into(),
        }],
    }
}

/// Creates a profile (or, with `validate_only`, returns it unsaved).
pub async fn create(
    app: &App,
    who: &Caller,
    (def, organization_id): (&'static ImportTypeDef, Option<i64>),
    input: &ProfileInput,
    (request_id, validate_only): (Option<&str>, bool),
    call_id: &str,
) -> Result<Option<Profile>, ApiError> {
    let content = validate(def, input)?;
    let mut conn = app.db.conn().await?;
    if let Some(org) = organization_id {
        history::existing_org(&mut conn, org).await?;
    }
    if validate_only {
        return Ok(None);
    }
    let created = records::create(
        &mut conn,
        organization_id,
        def.key,
        &content,
        request_id,
        &who.requester(),
    )
    .await?;
    let profile = match created {
        Created::New(p) => *p,
        Created::Again(p) => return Ok(Some(*p)),
        Created::NameTaken => return Err(name_taken(&content.name)),
    };
    audit(app, who, call_id, "create_profile", &profile).await;
    Ok(Some(profile))
}

/// Saves a profile's next version; the files of imports not started yet
/// move to it.
pub async fn update(
    app: &App,
    who: &Caller,
    id: Uuid,
    input: &ProfileInput,
    (expected_version, validate_only): (Option<i32>, bool),
    call_id: &str,
) -> Result<Option<(Profile, u64)>, ApiError> {
    let current = get(app, who, id, None).await?;
    let def = profile_type(&current)?;
    let content = validate(def, input)?;
    if validate_only {
        return Ok(None);
    }
    let mut conn = app.db.conn().await?;
    let (profile, moved) = match records::update(
        &mut conn,
        id,
        expected_version,
        &content,
        &who.requester(),
    )
    .await?
    {
        Updated::Done(p, moved) => (*p, moved),
        Updated::NotFound => return Err(ApiError::not_found("profile", id)),
        Updated::Deleted => return Err(deleted(id)),
        Updated::VersionMismatch(latest) => {
            return Err(ApiError::Aborted(format!(
                "profile {id} is at version {latest}, not the version {} this update edited: read it again and repeat the change",
                expected_version.unwrap_or_default()
            )));
        }
        Updated::NameTaken => return Err(name_taken(&content.name)),
    };
    audit(app, who, call_id, "update_profile", &profile).await;
    Ok(Some((profile, moved)))
}

/// Marks a profile deleted: it is no longer offered; files that used it
/// keep their version.
pub async fn delete(app: &App, who: &Caller, id: Uuid, call_id: &str) -> Result<Profile, ApiError> {
    get(app, who, id, None).await?;
    let profile = records::delete(&mut *app.db.conn().await?, id)
        .await?
        .ok_or_else(|| ApiError::not_found("profile", id))?;
    audit(app, who, call_id, "delete_profile", &profile).await;
    Ok(profile)
}

async fn audit(app: &App, who: &Caller, call_id: &str, action: &'static str, p: &Profile) {
    let details = serde_json::json!({
        "profile_id": p.id,
        "name": p.name,
        "import_type": p.import_type,
        "version": p.version,
        "rules": p.rules,
        "column_mapping": p.column_mapping,
        "source_headers": p.source_headers,
    });
    let event = history::call(who, call_id, action, p.organization_id, None, details);
    history::record(app, event).await;
}

/// A profile (at `version`, the latest when `None`) the caller may see:
/// presets, and their own organization's.
pub async fn get(
    app: &App,
    who: &Caller,
    id: Uuid,
    version: Option<i32>,
) -> Result<Profile, ApiError> {
    records::get(&mut *app.db.read_conn().await?, id, version)
        .await?
        .filter(|p| p.organization_id.is_none_or(|org| who.sees(org)))
        .ok_or_else(|| match version {
            Some(v) => ApiError::not_found("profile version", format!("{id}@{v}")),
            None => ApiError::not_found("profile", id),
        })
}

/// A page of profiles the caller may see, by name.
pub async fn list(
    app: &App,
    who: &Caller,
    mut filter: ProfileFilter,
    after: Option<(String, Uuid)>,
    limit: u64,
) -> Result<Vec<Profile>, ApiError> {
    let mut conn = app.db.read_conn().await?;
    filter.organization_id = history::visible_org(&mut conn, who, filter.organization_id).await?;
    Ok(records::list(&mut conn, &filter, after, limit).await?)
}

/// A profile whose source headers a file's header contains.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub profile: Profile,
    pub matched: usize,
    pub complete: bool,
}

/// Profiles of `def` (the organization's and the presets) at least half of
/// whose source headers `headers` holds, most matched first, the
/// organization's own before presets.
pub async fn suggest(
    app: &App,
    who: &Caller,
    def: &'static ImportTypeDef,
    organization_id: Option<i64>,
    headers: &[String],
) -> Result<Vec<Suggestion>, ApiError> {
    let filter = ProfileFilter {
        import_type: Some(def.key.to_string()),
        organization_id,
        deleted_too: false,
    };
    let candidates = list(app, who, filter, None, 1_000).await?;
    Ok(rank(candidates, headers))
}

fn rank(candidates: Vec<Profile>, headers: &[String]) -> Vec<Suggestion> {
    let have: Vec<String> = headers.iter().map(|h| normalize_header(h)).collect();
    let mut out: Vec<Suggestion> = candidates
        .into_iter()
        .filter_map(|profile| {
            let wanted: Vec<String> =
                serde_json::from_value(profile.source_headers.clone()).ok()?;
            let wanted: Vec<String> = wanted.iter().map(|h| normalize_header(h)).collect();
            let matched = wanted.iter().filter(|w| have.contains(w)).count();
            (!wanted.is_empty() && matched * 2 >= wanted.len()).then_some(Suggestion {
                complete: matched == wanted.len(),
                matched,
                profile,
            })
        })
        .collect();
    out.sort_by_key(|s| {
        (
            !s.complete,
            std::cmp::Reverse(s.matched),
            s.profile.organization_id.is_none(),
        )
    });
    out
}

/// Suggestions for a file uploaded without a profile.
pub async fn suggest_for_file(
    app: &App,
    who: &Caller,
    file: &passare_imports_store::entities::import_files::Model,
) -> Result<Vec<Suggestion>, ApiError> {
    if file.profile_id.is_some() {
        return Ok(Vec::new());
    }
    let Some(def) = catalog::find(&file.import_type) else {
        return Ok(Vec::new());
    };
    let headers = passare_imports_store::load::file_headers(file)?;
    suggest(app, who, def, Some(file.organization_id), &headers).await
}

fn profile_type(p: &Profile) -> Result<&'static ImportTypeDef, ApiError> {
    catalog::find(&p.import_type).ok_or_else(|| {
        ApiError::Internal(format!(
            "profile {} has unknown type {}",
            p.id, p.import_type
        ))
    })
}

fn deleted(id: Uuid) -> ApiError {
    ApiError::precondition(
        "PROFILE_DELETED",
        format!("profile {id} was deleted; choose another profile"),
        "STATE",
        format!("profiles/{id}"),
        "the profile is deleted",
    )
}

/// The profile an upload names, as the file will record it: of the file's
/// import type, for its organization (or every one), not deleted, and
/// with rules that still compile.
pub async fn for_upload(
    app: &App,
    import: &imports::Model,
    (profile_id, def): (Option<Uuid>, &'static ImportTypeDef),
) -> Result<Option<AppliedProfile>, ApiError> {
    let Some(id) = profile_id else {
        return Ok(None);
    };
    let profile = records::get(&mut *app.db.conn().await?, id, None)
        .await?
        .filter(|p| {
            p.organization_id
                .is_none_or(|o| o == import.organization_id)
        })
        .ok_or_else(|| ApiError::not_found("profile", id))?;
    if profile.deleted_at.is_some() {
        return Err(deleted(id));
    }
    if profile.import_type != def.key {
        return Err(ApiError::invalid(
            "header.profile_id",
            format!(
                "profile {:?} is for {}, not {}",
                profile.name, profile.import_type, def.key
            ),
        ));
    }
    let applied = profile.applied()?;
    if let Err(errors) = applied.program(def) {
        let first = errors.first().map(ToString::to_string).unwrap_or_default();
        return Err(ApiError::precondition(
            "PROFILE_INVALID",
            format!(
                "profile {:?} no longer fits {}: {first}; update the profile",
                profile.name, def.display_name
            ),
            "STATE",
            format!("profiles/{id}"),
            "the profile's rules do not compile",
        ));
    }
    Ok(Some(applied))
}
