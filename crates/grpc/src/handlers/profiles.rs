//! Saved import profiles: create, update (a new version), read, list,
//! delete, and suggestions from a file's header.

use passare_imports_app::App;
use passare_imports_app::error::ApiError;
use passare_imports_app::profiles;
use passare_imports_proto::v1 as pb;
use passare_imports_store::profiles::ProfileFilter;
use uuid::Uuid;

use crate::auth::Call;
use crate::convert::{self, import_type_named};
use crate::paging;

fn profile_of(p: &Option<pb::ImportProfile>) -> Result<&pb::ImportProfile, ApiError> {
    p.as_ref()
        .ok_or_else(|| ApiError::invalid("profile", "is required"))
}

pub async fn create_profile(
    app: &App,
    call: Call,
    req: pb::CreateProfileRequest,
) -> Result<pb::CreateProfileResponse, ApiError> {
    let p = profile_of(&req.profile)?;
    let def = import_type_named("profile.import_type", &p.import_type)?;
    let org = convert::optional_org(&p.organization_id)?;
    let input = convert::profile_input(p)?;
    let request_id = convert::optional_uuid("request_id", &req.request_id)?.map(|u| u.to_string());
    let saved = profiles::create(
        app,
        &call.who,
        (def, org),
        &input,
        (request_id.as_deref(), req.validate_only),
        &call.id,
    )
    .await?;
    Ok(pb::CreateProfileResponse {
        // Validated only: the profile as it would be saved, without an id.
        profile: Some(match saved {
            Some(p) => convert::profile(&p),
            None => p.clone(),
        }),
    })
}

pub async fn update_profile(
    app: &App,
    call: Call,
    req: pb::UpdateProfileRequest,
) -> Result<pb::UpdateProfileResponse, ApiError> {
    let p = profile_of(&req.profile)?;
    let id = convert::uuid("profile.id", &p.id)?;
    let input = convert::profile_input(p)?;
    let expected = (req.expected_version > 0).then_some(req.expected_version);
    let saved = profiles::update(
        app,
        &call.who,
        id,
        &input,
        (expected, req.validate_only),
        &call.id,
    )
    .await?;
    Ok(match saved {
        Some((profile, moved)) => pb::UpdateProfileResponse {
            profile: Some(convert::profile(&profile)),
            files_updated: moved.min(i32::MAX as u64) as i32,
        },
        None => pb::UpdateProfileResponse {
            profile: Some(p.clone()),
            files_updated: 0,
        },
    })
}

pub async fn get_profile(
    app: &App,
    call: Call,
    req: pb::GetProfileRequest,
) -> Result<pb::GetProfileResponse, ApiError> {
    let id = convert::uuid("profile_id", &req.profile_id)?;
    let version = (req.version > 0).then_some(req.version);
    let p = profiles::get(app, &call.who, id, version).await?;
    Ok(pb::GetProfileResponse {
        profile: Some(convert::profile(&p)),
    })
}

pub async fn list_profiles(
    app: &App,
    call: Call,
    req: pb::ListProfilesRequest,
) -> Result<pb::ListProfilesResponse, ApiError> {
    let page_size = paging::page_size(req.page_size, 50, 500)?;
    let import_type = match req.import_type.trim() {
        "" => None,
        key => Some(import_type_named("import_type", key)?.key.to_string()),
    };
    let filter = ProfileFilter {
        import_type,
        organization_id: convert::optional_org(&req.organization_id)?,
        deleted_too: req.show_deleted,
    };
    let after: Option<(String, Uuid)> = paging::decode("profiles", &req.page_token)?;
    let rows = profiles::list(app, &call.who, filter, after, page_size + 1).await?;
    let (rows, next_page_token) =
        paging::page("profiles", rows, page_size, |p| (p.name.clone(), p.id));
    Ok(pb::ListProfilesResponse {
        profiles: rows.iter().map(convert::profile).collect(),
        next_page_token,
    })
}

pub async fn delete_profile(
    app: &App,
    call: Call,
    req: pb::DeleteProfileRequest,
) -> Result<pb::DeleteProfileResponse, ApiError> {
    let id = convert::uuid("profile_id", &req.profile_id)?;
    let p = profiles::delete(app, &call.who, id, &call.id).await?;
    Ok(pb::DeleteProfileResponse {
        profile: Some(convert::profile(&p)),
    })
}

pub async fn suggest_profiles(
    app: &App,
    call: Call,
    req: pb::SuggestProfilesRequest,
) -> Result<pb::SuggestProfilesResponse, ApiError> {
    let def = import_type_named("import_type", &req.import_type)?;
    let org = convert::optional_org(&req.organization_id)?;
    if req.headers.len() > 1_000 {
        return Err(ApiError::invalid("headers", "at most 1000 headers"));
    }
    let found = profiles::suggest(app, &call.who, def, org, &req.headers).await?;
    Ok(pb::SuggestProfilesResponse {
        suggestions: found.iter().map(convert::suggestion).collect(),
    })
}
