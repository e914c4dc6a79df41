//! Authentication at the door and authorization per RPC: the interceptor
//! checks the bearer token and puts the caller into the request; each
//! handler then declares the [`Access`] it needs with [`authorize`].

use std::sync::Arc;

use passare_imports_app::error::ApiError;
use passare_imports_app::identity::{Access, Auth, Caller};
use tonic::{Request, Status};

use crate::status::status;

/// The tonic interceptor guarding ImportService.
pub fn interceptor(auth: Arc<Auth>) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut req: Request<()>| {
        let caller = bearer(&req)
            .and_then(|token| auth.verify(token))
            .map_err(status)?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// The bearer token of a request.
fn bearer<T>(req: &Request<T>) -> Result<&str, ApiError> {
    let header = req
        .metadata()
        .get("authorization")
        .ok_or_else(|| {
            ApiError::Unauthenticated(
                "missing authorization metadata: send `authorization: Bearer <token>`".into(),
            )
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("authorization metadata is not text".into()))?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::Unauthenticated("authorization must be `Bearer <token>`".into()))
}

/// The caller of a request, refused unless they have `access`.
pub fn authorize<T>(req: &Request<T>, access: Access) -> Result<Caller, ApiError> {
    let who = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("the call was not authenticated".into()))?;
    who.may(access)?;
    Ok(who)
}

/// The call's `x-request-id` (set by the request-id layer when absent).
pub fn request_id<T>(req: &Request<T>) -> String {
    req.metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// An authorized call as the handlers see it: who is calling and the call's
/// request id (which the audit trail and the logs carry).
pub struct Call {
    pub who: Caller,
    pub id: String,
}

impl Call {
    /// Authorizes a call for `access` and keeps what the handler needs of its
    /// metadata.
    pub fn authorize<T>(req: &Request<T>, access: Access) -> Result<Self, ApiError> {
        Ok(Call {
            who: authorize(req, access)?,
            id: request_id(req),
        })
    }
}
