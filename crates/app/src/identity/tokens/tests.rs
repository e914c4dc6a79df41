use super::*;
use crate::identity::Access;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn keys(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-keys")
        .join(name)
}

fn config(secret: &str, public_key: Option<&str>) -> Config {
    Config {
        jwt_secret: secret.into(),
        jwt_public_key_file: public_key.map(keys),
        ..Config::default()
    }
}

fn auth() -> Auth {
    Auth::from_config(&config(SECRET, None)).expect("the test secret is valid")
}

fn now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

fn claims(super_admin: bool, exp: u64) -> Claims {
    Claims {
        sub: "u1".into(),
        name: "Dana".into(),
        email: "dana@passare.com".into(),
        super_admin,
        exp,
        iat: now(),
        ..Claims::default()
    }
}

/// Claims as the identity service writes them, with `iss` and `aud`.
fn signed(alg: Algorithm, key: &EncodingKey, body: serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &body, key).expect("a test token encodes")
}

fn identity_claims(iss: &str, aud: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "sub": "u9", "name": "Ida", "email": "ida@passare.com", "super_admin": true,
        "iss": iss, "aud": aud, "iat": now(), "exp": now() + 600,
    })
}

fn refusal(auth: &Auth, token: &str) -> Option<String> {
    match auth.verify(token) {
        Ok(_) => None,
        Err(e) => {
            assert_eq!(e.reason(), "UNAUTHENTICATED");
            Some(e.to_string())
        }
    }
}

#[test]
fn a_token_signed_with_the_secret_names_its_caller() -> Result {
    let auth = auth();
    let caller = auth.verify(&auth.issue(&claims(true, now() + 3600))?)?;
    assert_eq!(caller.email, "dana@passare.com");
    assert!(caller.super_admin && caller.is_staff());
    assert!(!caller.sees_developer_details());
    Ok(())
}

#[test]
fn a_developer_role_counts_and_a_plain_user_sees_only_their_organization() -> Result {
    let auth = auth();
    let dev = auth.verify(&auth.issue(&Claims {
        roles: vec!["developer".into()],
        ..claims(false, now() + 3600)
    })?)?;
    assert!(dev.is_staff() && dev.sees_developer_details() && dev.sees(7));
    let user = auth.verify(&auth.issue(&Claims {
        org: Some(1042),
        ..claims(false, now() + 3600)
    })?)?;
    assert!(!user.is_staff());
    assert!(user.sees(1042) && !user.sees(2001));
    assert!(user.may(Access::Manage).is_err());
    assert!(user.may(Access::Read).is_ok());
    Ok(())
}

#[test]
fn expired_and_foreign_tokens_are_unauthenticated() -> Result {
    let auth = auth();
    let expired = auth.issue(&Claims {
        iat: 900,
        ..claims(true, 1000)
    })?;
    assert!(refusal(&auth, &expired).is_some_and(|m| m.contains("expired")));
    let other = Auth::from_config(&config("another-secret-0123456789abcdef-0123", None))?;
    let foreign = other.issue(&claims(true, now() + 3600))?;
    assert!(refusal(&auth, &foreign).is_some_and(|m| m.contains("signature")));
    assert!(refusal(&auth, "not.a.token").is_some());
    Ok(())
}

#[test]
fn issuer_and_audience_must_be_this_services() -> Result {
    let auth = auth();
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let (iss, aud) = (Config::default().jwt_issuer, Config::default().jwt_audience);
    let good = signed(
        Algorithm::HS256,
        &key,
        identity_claims(&iss, aud.clone().into()),
    );
    assert!(auth.verify(&good).is_ok());
    // An audience list that includes this service is fine.
    let listed = identity_claims(&iss, serde_json::json!(["billing", aud]));
    assert!(auth.verify(&signed(Algorithm::HS256, &key, listed)).is_ok());
    let wrong_aud = identity_claims(&iss, "passare-billing".into());
    let m = refusal(&auth, &signed(Algorithm::HS256, &key, wrong_aud));
    assert!(m.is_some_and(|m| m.contains("audience")));
    let wrong_iss = identity_claims("someone-else", aud.clone().into());
    let m = refusal(&auth, &signed(Algorithm::HS256, &key, wrong_iss));
    assert!(m.is_some_and(|m| m.contains("issuer")));
    let mut no_iss = identity_claims(&iss, aud.into());
    no_iss.as_object_mut().map(|o| o.remove("iss"));
    let m = refusal(&auth, &signed(Algorithm::HS256, &key, no_iss));
    assert!(m.is_some_and(|m| m.contains("\"iss\"")), "missing iss");
    Ok(())
}

#[test]
fn not_before_and_the_longest_lifetime_are_enforced() -> Result {
    let auth = auth();
    let future = auth.issue(&Claims {
        nbf: Some(now() + 600),
        ..claims(true, now() + 3600)
    })?;
    assert!(refusal(&auth, &future).is_some_and(|m| m.contains("not valid yet")));
    let started = auth.issue(&Claims {
        nbf: Some(now() - 5),
        ..claims(true, now() + 3600)
    })?;
    assert!(auth.verify(&started).is_ok());
    let max = Config::default().jwt_max_lifetime_secs;
    let too_long = auth.issue(&claims(true, now() + max + 120))?;
    assert!(refusal(&auth, &too_long).is_some_and(|m| m.contains("longer than")));
    // Without `iat`, the lifetime counts from now.
    let no_iat = auth.issue(&Claims {
        iat: 0,
        ..claims(true, now() + max + 120)
    })?;
    assert!(refusal(&auth, &no_iat).is_some_and(|m| m.contains("longer than")));
    let from_the_future = auth.issue(&Claims {
        iat: now() + 3600,
        ..claims(true, now() + 4000)
    })?;
    assert!(refusal(&auth, &from_the_future).is_some_and(|m| m.contains("future")));
    Ok(())
}

#[test]
fn tokens_of_the_identity_service_are_verified_with_its_public_key() -> Result {
    let (iss, aud) = (Config::default().jwt_issuer, Config::default().jwt_audience);
    for (public, private, alg) in [
        ("rsa.pub.pem", "rsa.pem", Algorithm::RS256),
        ("ed25519.pub.pem", "ed25519.pem", Algorithm::EdDSA),
    ] {
        let verify_only = Auth::from_config(&config("", Some(public)))?;
        let pem = std::fs::read(keys(private))?;
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem)?,
            _ => EncodingKey::from_ed_pem(&pem)?,
        };
        let token = signed(alg, &key, identity_claims(&iss, aud.clone().into()));
        let caller = verify_only.verify(&token)?;
        assert_eq!((caller.id.as_str(), caller.super_admin), ("u9", true));
        // Without a secret, HS256 tokens are refused, and none can be signed.
        let hs = signed(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            identity_claims(&iss, aud.clone().into()),
        );
        let m = refusal(&verify_only, &hs);
        assert!(m.is_some_and(|m| m.contains("does not accept")), "{alg:?}");
        assert!(matches!(
            verify_only.issue(&claims(true, now() + 60)),
            Err(TokenError::NoSecret)
        ));
        // A service with both keys takes both kinds of token.
        let both = Auth::from_config(&config(SECRET, Some(public)))?;
        assert!(both.verify(&token).is_ok() && both.verify(&hs).is_ok());
    }
    // The other public key does not verify an RS256 token.
    let pem = std::fs::read(keys("rsa.pem"))?;
    let token = signed(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&pem)?,
        identity_claims(&iss, aud.into()),
    );
    let ed_only = Auth::from_config(&config("", Some("ed25519.pub.pem")))?;
    assert!(refusal(&ed_only, &token).is_some());
    Ok(())
}

#[test]
fn a_public_key_file_that_is_missing_or_not_a_key_stops_the_start() {
    let missing = Auth::from_config(&config("", Some("no-such-key.pem")));
    assert!(missing.is_err_and(|e| e.to_string().contains("IMPORTS_JWT_PUBLIC_KEY_FILE")));
    let not_a_key = Auth::from_config(&config("", Some("README.md")));
    assert!(not_a_key.is_err_and(|e| e.to_string().contains("no RSA or Ed25519")));
}
