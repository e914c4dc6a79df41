//! Bearer tokens: which keys verify them, what a token must claim, and the
//! development tokens the CLI and the tests sign.
//!
//! Two kinds of key, either or both configured:
//! - `IMPORTS_JWT_SECRET`, at least 32 bytes: HS256 tokens, which whoever
//!   holds the secret can sign (the CLI's `token` command, the tests);
//! - `IMPORTS_JWT_PUBLIC_KEY_FILE`, an RSA or Ed25519 public key in PEM:
//!   RS256 or EdDSA tokens signed by Passare's identity service, which this
//!   service can only verify.
//!
//! A token is accepted only with the algorithm of a configured key (so an
//! HS256 token can never be checked against a public key), with `iss` and
//! `aud` equal to the configured issuer and audience, inside `nbf`..`exp`
//! (30 s of clock skew allowed), and living no longer than the configured
//! maximum lifetime from `iat` (or from now when it has none).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::{Caller, Claims};
pub use crate::config::MIN_SECRET_BYTES;
use crate::config::{Config, ConfigError};
use crate::error::ApiError;

/// Clock skew allowed between the token's issuer and this service, seconds.
const LEEWAY_SECS: u64 = 30;

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("this service only verifies tokens (no IMPORTS_JWT_SECRET is configured to sign them)")]
    NoSecret,
    #[error("signing the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("encoding the token's claims: {0}")]
    Claims(#[from] serde_json::Error),
}

/// Validates tokens, and signs development tokens with the secret.
#[derive(Clone)]
pub struct Auth {
    /// The HS256 secret, both ways.
    secret: Option<(DecodingKey, EncodingKey)>,
    /// The identity service's public key and its algorithm.
    public: Option<(Algorithm, DecodingKey)>,
    issuer: String,
    audience: String,
    max_lifetime_secs: u64,
}

impl Auth {
    /// The keys and rules of the configuration; reads the public key file.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let public = match &config.jwt_public_key_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "IMPORTS_JWT_PUBLIC_KEY_FILE {}: {e}",
                        path.display()
                    ))
                })?;
                Some(public_key(&pem).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "IMPORTS_JWT_PUBLIC_KEY_FILE {} holds no RSA or Ed25519 public key in PEM form",
                        path.display()
                    ))
                })?)
            }
            None => None,
        };
        let secret = Some(config.jwt_secret.as_bytes())
            .filter(|s| !s.is_empty())
            .map(|s| (DecodingKey::from_secret(s), EncodingKey::from_secret(s)));
        Ok(Self {
            secret,
            public,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            max_lifetime_secs: config.jwt_max_lifetime_secs,
        })
    }

    /// Checks a bearer token and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let refuse = |why: String| ApiError::Unauthenticated(why);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| refuse("the bearer token is not a valid Passare token".into()))?;
        let key = match (header.alg, &self.secret, &self.public) {
            (Algorithm::HS256, Some((key, _)), _) => key,
            (alg, _, Some((public_alg, key))) if alg == *public_alg => key,
            (alg, _, _) => {
                return Err(refuse(format!(
                    "the bearer token is signed with {alg:?}, which this service does not accept (it accepts {})",
                    self.accepted()
                )));
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| refuse(self.why(e.kind())))?
            .claims;
        self.check_lifetime(&claims).map_err(refuse)?;
        Ok(Caller {
            id: claims.sub,
            name: claims.name,
            email: claims.email,
            super_admin: claims.super_admin,
            developer: claims.developer || claims.roles.iter().any(|r| r == "developer"),
            organization_id: claims.org,
        })
    }

    /// Signs an HS256 token for `claims`, with this service's issuer and
    /// audience (development tokens and tests).
    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        let (_, key) = self.secret.as_ref().ok_or(TokenError::NoSecret)?;
        let mut body = serde_json::to_value(claims)?;
        body["iss"] = self.issuer.clone().into();
        body["aud"] = self.audience.clone().into();
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &body,
            key,
        )?)
    }

    /// A token lives from `iat` (or from now, when it has none) to `exp`.
    fn check_lifetime(&self, claims: &Claims) -> Result<(), String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        if claims.iat > now + LEEWAY_SECS {
            return Err("the bearer token is issued in the future (iat)".into());
        }
        let from = if claims.iat == 0 { now } else { claims.iat };
        let lifetime = claims.exp.saturating_sub(from);
        if lifetime > self.max_lifetime_secs {
            return Err(format!(
                "the bearer token lives {lifetime} s, longer than the {} s this service accepts (IMPORTS_JWT_MAX_LIFETIME_SECS)",
                self.max_lifetime_secs
            ));
        }
        Ok(())
    }

    fn why(&self, kind: &ErrorKind) -> String {
        match kind {
            ErrorKind::ExpiredSignature => "the bearer token has expired".into(),
            ErrorKind::ImmatureSignature => "the bearer token is not valid yet (nbf)".into(),
            ErrorKind::InvalidSignature => "the bearer token's signature is not valid".into(),
            ErrorKind::InvalidIssuer => {
                format!("the bearer token's issuer (iss) is not {:?}", self.issuer)
            }
            ErrorKind::InvalidAudience => format!(
                "the bearer token's audience (aud) does not include {:?}",
                self.audience
            ),
            ErrorKind::MissingRequiredClaim(claim) => {
                format!("the bearer token has no {claim:?} claim")
            }
            _ => "the bearer token is not a valid Passare token".into(),
        }
    }

    fn accepted(&self) -> String {
        let mut algs = Vec::new();
        if self.secret.is_some() {
            algs.push("HS256".to_string());
        }
        if let Some((alg, _)) = &self.public {
            algs.push(format!("{alg:?}"));
        }
        algs.join(" and ")
    }
}

/// An Ed25519 (EdDSA) or RSA (RS256) public key from PEM.
fn public_key(pem: &[u8]) -> Option<(Algorithm, DecodingKey)> {
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Some((Algorithm::EdDSA, key));
    }
    DecodingKey::from_rsa_pem(pem)
        .ok()
        .map(|key| (Algorithm::RS256, key))
}

#[cfg(test)]
mod tests;
