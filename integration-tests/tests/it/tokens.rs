//! Bearer tokens through the real server: a secret too short to be safe
//! stops the process at start; tokens of Passare's identity service (RS256
//! or EdDSA) are verified with its public key; a wrong audience, a token
//! not valid yet and one that lives too long are refused.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use passare_imports_integration_tests::service::Config;
use passare_imports_integration_tests::test_env::{Options, TestEnv};
use passare_imports_integration_tests::{binary, epoch_now};
use passare_imports_proto::v1 as pb;
use tonic::Code;

fn key_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/app/test-keys")
        .join(name)
}

#[tokio::test]
async fn a_server_with_a_secret_shorter_than_32_bytes_refuses_to_start() -> anyhow::Result<()> {
    let mut child = Command::new(binary()?)
        .arg("serve")
        .env("IMPORTS_JWT_SECRET", "sixteen-byte-key")
        .env("IMPORTS_GRPC_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            child.kill()?;
            anyhow::bail!("the server kept running with a 16-byte secret");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        std::io::Read::read_to_string(&mut err, &mut stderr)?;
    }
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("IMPORTS_JWT_SECRET is 16 bytes; it must be at least 32"),
        "{stderr}"
    );
    Ok(())
}

/// Claims as the identity service writes them.
fn identity_claims(aud: &str, iat: u64, nbf: u64, exp: u64) -> serde_json::Value {
    serde_json::json!({
        "sub": "ops-7", "name": "Olive Ops", "email": "olive@passare.com",
        "super_admin": true, "iss": Config::default().jwt_issuer, "aud": aud,
        "iat": iat, "nbf": nbf, "exp": exp,
    })
}

async fn answer(env: &TestEnv, token: &str) -> anyhow::Result<Result<usize, (Code, String)>> {
    let mut client = env.client_with_token(token).await?;
    Ok(client
        .list_import_types(pb::ListImportTypesRequest {})
        .await
        .map(|r| r.into_inner().import_types.len())
        .map_err(|s| (s.code(), s.message().to_string())))
}

async fn the_identity_services_tokens_are_verified(
    configure: fn(&mut Config),
    alg: Algorithm,
    private_key: EncodingKey,
) -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        in_process_workers: 0,
        configure: Some(configure),
        ..Options::default()
    })
    .await?;
    let aud = Config::default().jwt_audience;
    let now = epoch_now();
    let sign =
        |claims: serde_json::Value| jsonwebtoken::encode(&Header::new(alg), &claims, &private_key);

    let good = sign(identity_claims(&aud, now, now, now + 900))?;
    assert_eq!(answer(&env, &good).await?, Ok(12), "{alg:?}");
    // The test's HS256 secret still signs tokens beside the public key.
    let mut admin = env.client().await?;
    admin
        .list_import_types(pb::ListImportTypesRequest {})
        .await?;

    let refusals = [
        (
            sign(identity_claims("passare-billing", now, now, now + 900))?,
            "audience",
        ),
        (
            sign(identity_claims(&aud, now, now + 600, now + 900))?,
            "not valid yet",
        ),
        (
            sign(identity_claims(&aud, now, now, now + 3 * 86_400))?,
            "longer than",
        ),
        (
            sign(identity_claims(&aud, now - 7200, now - 7200, now - 3600))?,
            "expired",
        ),
    ];
    for (token, why) in refusals {
        let refused = answer(&env, &token).await?;
        assert!(
            matches!(&refused, Err((Code::Unauthenticated, m)) if m.contains(why)),
            "{alg:?} {why}: {refused:?}"
        );
    }
    Ok(())
}

fn rsa_public_key(c: &mut Config) {
    c.jwt_public_key_file = Some(key_file("rsa.pub.pem"));
}

fn ed25519_public_key(c: &mut Config) {
    c.jwt_public_key_file = Some(key_file("ed25519.pub.pem"));
}

#[tokio::test]
async fn rs256_tokens_of_the_identity_service_are_verified_with_its_public_key()
-> anyhow::Result<()> {
    let key = EncodingKey::from_rsa_pem(&std::fs::read(key_file("rsa.pem"))?)?;
    the_identity_services_tokens_are_verified(rsa_public_key, Algorithm::RS256, key).await
}

#[tokio::test]
async fn eddsa_tokens_of_the_identity_service_are_verified_with_its_public_key()
-> anyhow::Result<()> {
    let key = EncodingKey::from_ed_pem(&std::fs::read(key_file("ed25519.pem"))?)?;
    the_identity_services_tokens_are_verified(ed25519_public_key, Algorithm::EdDSA, key).await
}
