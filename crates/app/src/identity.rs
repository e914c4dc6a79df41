//! Identity and access: every ImportService call carries `authorization:
//! Bearer <jwt>` signed with the configured HS256 secret; [`Auth::verify`]
//! checks it and names the [`Caller`], and each RPC declares the [`Access`]
//! it needs. See docs/access-control.md:
//! super admins and developers may do everything (developers also see
//! backtraces and cause chains); any other user may only read the imports
//! of their own organization, and anything of another organization is
//! NOT_FOUND exactly like what does not exist.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use passare_imports_store::Requester;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

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
    #[serde(default)]
    pub iat: u64,
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

/// Validates and issues tokens.
#[derive(Clone)]
pub struct Auth {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl Auth {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        Self {
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Checks a bearer token and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                let why = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        "the bearer token has expired"
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "the bearer token's signature is not valid"
                    }
                    _ => "the bearer token is not a valid Passare token",
                };
                ApiError::Unauthenticated(why.into())
            })?;
        let c = data.claims;
        Ok(Caller {
            id: c.sub,
            name: c.name,
            email: c.email,
            super_admin: c.super_admin,
            developer: c.developer || c.roles.iter().any(|r| r == "developer"),
            organization_id: c.org,
        })
    }

    /// Signs a token for `claims` (development tokens and tests).
    pub fn issue(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(super_admin: bool, exp: u64) -> Claims {
        Claims {
            sub: "u1".into(),
            name: "Dana".into(),
            email: "dana@passare.com".into(),
            super_admin,
            exp,
            ..Claims::default()
        }
    }

    fn later() -> u64 {
        (chrono::Utc::now().timestamp() + 3600) as u64
    }

    #[test]
    fn a_token_signed_with_the_secret_names_its_caller() -> Result<(), Box<dyn std::error::Error>> {
        let auth = Auth::new("0123456789abcdef-secret");
        let token = auth.issue(&claims(true, later()))?;
        let caller = auth.verify(&token)?;
        assert_eq!(caller.email, "dana@passare.com");
        assert!(caller.super_admin && caller.is_staff());
        assert!(!caller.sees_developer_details());
        Ok(())
    }

    #[test]
    fn a_developer_role_counts_and_a_plain_user_sees_only_their_organization()
    -> Result<(), Box<dyn std::error::Error>> {
        let auth = Auth::new("0123456789abcdef-secret");
        let dev = auth.verify(&auth.issue(&Claims {
            roles: vec!["developer".into()],
            ..claims(false, later())
        })?)?;
        assert!(dev.is_staff() && dev.sees_developer_details() && dev.sees(7));
        let user = auth.verify(&auth.issue(&Claims {
            org: Some(1042),
            ..claims(false, later())
        })?)?;
        assert!(!user.is_staff());
        assert!(user.sees(1042) && !user.sees(2001));
        assert!(user.may(Access::Manage).is_err());
        assert!(user.may(Access::Read).is_ok());
        Ok(())
    }

    #[test]
    fn expired_and_foreign_tokens_are_unauthenticated() -> Result<(), Box<dyn std::error::Error>> {
        let auth = Auth::new("0123456789abcdef-secret");
        let expired = auth.issue(&claims(true, 1000))?;
        let e = auth
            .verify(&expired)
            .err()
            .map(|e| (e.reason(), e.to_string()));
        assert_eq!(e.as_ref().map(|e| e.0), Some("UNAUTHENTICATED"));
        assert!(e.is_some_and(|e| e.1.contains("expired")));
        let foreign = Auth::new("another-secret-0123456789").issue(&claims(true, later()))?;
        assert_eq!(
            auth.verify(&foreign).err().map(|e| e.reason()),
            Some("UNAUTHENTICATED")
        );
        Ok(())
    }
}
