//! Every ImportService RPC needs a valid super admin's bearer token.

use passare_imports_cli::client;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use tonic::Code;

/// Calls every RPC with `token` and returns each one's status code.
async fn codes(url: &str, token: &str) -> anyhow::Result<Vec<(&'static str, Code)>> {
    let mut c = client::connect(url, token).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    let mut out = Vec::new();
    out.push((
        "CreateImport",
        code(
            c.create_import(pb::CreateImportRequest {
                organization_id: "1042".into(),
                failure_policy: 1,
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
    ));
    let header = pb::UploadFileRequest {
        payload: Some(pb::upload_file_request::Payload::Header(pb::FileHeader {
            import_id: id.clone(),
            file_name: "x.csv".into(),
            import_type: "cases".into(),
            declared_size_bytes: 1,
            ..Default::default()
        })),
    };
    out.push((
        "UploadFile",
        code(
            c.upload_file(tokio_stream::iter(vec![header]))
                .await
                .map(|_| ()),
        ),
    ));
    out.push((
        "StartImport",
        code(
            c.start_import(pb::StartImportRequest {
                import_id: id.clone(),
                failure_policy: 0,
            })
            .await
            .map(|_| ()),
        ),
    ));
    out.push((
        "GetImport",
        code(
            c.get_import(pb::GetImportRequest {
                import_id: id.clone(),
            })
            .await
            .map(|_| ()),
        ),
    ));
    out.push((
        "ListImports",
        code(
            c.list_imports(pb::ListImportsRequest::default())
                .await
                .map(|_| ()),
        ),
    ));
    out.push((
        "WatchImport",
        code(
            c.watch_import(pb::WatchImportRequest { import_id: id })
                .await
                .map(|_| ()),
        ),
    ));
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_missing_bad_expired_and_non_admin_tokens() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    let url = env.url();
    let foreign = {
        let mut parts: Vec<String> = env.token(&ADMIN).split('.').map(String::from).collect();
        // Same claims, a signature made with another key.
        parts[2] = "c2lnbmVkLWJ5LXNvbWVvbmUtZWxzZQ".into();
        parts.join(".")
    };
    let cases = [
        ("no token", String::new(), Code::Unauthenticated),
        ("garbage", "not-a-jwt".to_string(), Code::Unauthenticated),
        ("bad signature", foreign, Code::Unauthenticated),
        (
            "expired",
            env.token_with(&ADMIN, 1_000),
            Code::Unauthenticated,
        ),
        (
            "not a super admin",
            env.token(&User {
                id: "plain-1",
                super_admin: false,
            }),
            Code::PermissionDenied,
        ),
    ];
    for (what, token, expected) in cases {
        let got = if token.is_empty() {
            // A client that sends no authorization at all.
            let channel = tonic::transport::Channel::from_shared(url.clone())?
                .connect()
                .await?;
            let mut c = pb::import_service_client::ImportServiceClient::new(channel);
            vec![
                (
                    "GetImport",
                    c.get_import(pb::GetImportRequest {
                        import_id: "x".into(),
                    })
                    .await
                    .err()
                    .map_or(Code::Ok, |s| s.code()),
                ),
                (
                    "ListImports",
                    c.list_imports(pb::ListImportsRequest::default())
                        .await
                        .err()
                        .map_or(Code::Ok, |s| s.code()),
                ),
                (
                    "WatchImport",
                    c.watch_import(pb::WatchImportRequest {
                        import_id: "x".into(),
                    })
                    .await
                    .err()
                    .map_or(Code::Ok, |s| s.code()),
                ),
                (
                    "StartImport",
                    c.start_import(pb::StartImportRequest {
                        import_id: "x".into(),
                        failure_policy: 0,
                    })
                    .await
                    .err()
                    .map_or(Code::Ok, |s| s.code()),
                ),
                (
                    "CreateImport",
                    c.create_import(pb::CreateImportRequest::default())
                        .await
                        .err()
                        .map_or(Code::Ok, |s| s.code()),
                ),
                (
                    "UploadFile",
                    c.upload_file(tokio_stream::iter(Vec::<pb::UploadFileRequest>::new()))
                        .await
                        .err()
                        .map_or(Code::Ok, |s| s.code()),
                ),
            ]
        } else {
            codes(&url, &token).await?
        };
        assert_eq!(got.len(), 6, "{what}");
        for (rpc, code) in got {
            assert_eq!(code, expected, "{rpc} with {what}");
        }
    }
    // The super admin passes authentication: the errors left are about the request.
    let admin = codes(&url, &env.token(&ADMIN)).await?;
    for (rpc, code) in admin {
        assert!(
            !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
            "{rpc}: {code:?}"
        );
    }
    assert_eq!(
        count(&env.db, "SELECT count(*) FROM imports").await?,
        1,
        "only the admin's CreateImport created"
    );
    env.finish().await
}
