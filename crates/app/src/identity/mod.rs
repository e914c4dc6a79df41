//! Identity and access: every ImportService call carries `authorization:
//! Bearer <jwt>`, signed with the configured HS256 secret or by Passare's
//! identity service (RS256 or EdDSA, checked against its public key);
//! [`Auth::verify`] checks it and names the [`Caller`], and each RPC declares
//! the [`Access`] it needs. See docs/access-control.md:
//! super admins and developers may do everything (developers also see
//! backtraces and cause chains); any other user may only read the imports
//! of their own organization, and anything of another organization is
//! NOT_FOUND exactly like what does not exist.

use passare_imports_store::Requester;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

mod tokens;

pub use tokens::{Auth, MIN_SECRET_BYTES, TokenError};

/// Claims of a Passare bearer token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Claims {
    /// User id.
    pub sub: String,
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub super_admin: bool,
    /// A Passare developer: may do what super admins do, and sees developer
    /// details (backtraces, cause chains).
    #[serde(default)]
    pub developer: bool,
    /// Roles; `developer` counts as the claim of that name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The organization a user who is neither super admin nor developer
    /// belongs to: the only one whose imports they may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<i64>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch (0: not given).
    #[serde(default)]
    pub iat: u64,
    /// Not valid before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// The authenticated user of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: String,
    pub name: String,
    pub email: String,
    pub super_admin: bool,
    pub developer: bool,
    /// The caller's own organization (for users who are not staff).
    pub organization_id: Option<i64>,
}

/// What an RPC needs of its caller, declared once per RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any authenticated user; what they read is limited to what they may see.
    Read,
    /// Passare staff (super admins and developers): staff-only lists such as
    /// the audit log, chunk failures and the pauses of every organization.
    Staff,
    /// Changing imports: super admins and developers.
    Manage,
}

impl Caller {
    /// Super admins and developers: Passare staff, who may do everything.
    pub fn is_staff(&self) -> bool {
        self.super_admin || self.developer
    }

    /// Refuses a caller who lacks `access`.
    pub fn may(&self, access: Access) -> Result<(), ApiError> {
        match access {
            Access::Read => Ok(()),
            _ if self.is_staff() => Ok(()),
            Access::Staff => Err(ApiError::PermissionDenied(
                "only Passare super admins and developers may see this".into(),
            )),
            Access::Manage => Err(ApiError::PermissionDenied(
                "only Passare super admins may change imports".into(),
            )),
        }
    }

    /// The caller as records name who acted.
    pub fn requester(&self) -> Requester {
        Requester {
            id: self.id.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
        }
    }

    /// Whether the caller may see this organization's imports.
    pub fn sees(&self, organization_id: i64) -> bool {
        self.is_staff() || self.organization_id == Some(organization_id)
    }

    /// Developer details (backtraces, cause chains) are for developers only.
    pub fn sees_developer_details(&self) -> bool {
        self.developer
    }
}
