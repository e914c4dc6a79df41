//! Saved import profiles and transform rules: a vendor's export (its own
//! headers, a 'Full Name' column, its own category words, `MM-DD-YY`
//! dates) becomes correct Cases and Rolodex records; analysis shows each
//! rule's before and after and flags a value no rule maps; the same files
//! without the profile fail analysis as before. Invalid rules are refused
//! with their reason; a new profile version between analysis and start
//! makes the analysis stale; every change is audited and old versions stay
//! readable.

use passare_imports_cli::client::Client;
use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use pb::transform_rule::Action;
use tonic::Code;
use tonic_types::StatusExt;

const ORG: i64 = 1042;

fn rule(action: Action) -> pb::TransformRule {
    pb::TransformRule {
        when: None,
        action: Some(action),
    }
}

fn map_values(column: &str, into: &str, values: &[(&str, &str)]) -> Action {
    Action::MapValues(pb::MapValuesRule {
        column: column.into(),
        into: into.into(),
        values: values
            .iter()
            .map(|(from, to)| pb::ValueMapping {
                from: from.to_string(),
                to: to.to_string(),
            })
            .collect(),
        ..Default::default()
    })
}

/// FuneralTech's case export.
pub(crate) fn cases_profile() -> pb::ImportProfile {
    pb::ImportProfile {
        name: "FuneralTech cases".into(),
        import_type: "cases".into(),
        column_mapping: vec![pb::ProfileColumnMapping {
            header: "Case No".into(),
            column: "case_number".into(),
        }],
        source_headers: vec![
            "Case No".into(),
            "Full Name".into(),
            "Died".into(),
            "Stage".into(),
        ],
        rules: vec![
            rule(Action::Split(pb::SplitRule {
                column: "Full Name".into(),
                separator: " ".into(),
                into: vec!["deceased_first_name".into(), "deceased_last_name".into()],
                from_end: true,
            })),
            rule(Action::ReformatDate(pb::DateRule {
                column: "Died".into(),
                pattern: "%m-%d-%y".into(),
                into: "date_of_death".into(),
            })),
            rule(map_values(
                "Stage",
                "case_status",
                &[("Done", "closed"), ("Working", "open")],
            )),
            pb::TransformRule {
                when: Some(pb::RuleCondition {
                    column: "case_type".into(),
                    test: pb::ConditionTest::Empty as i32,
                    values: vec![],
                }),
                action: Some(Action::DefaultValue(pb::DefaultRule {
                    column: "case_type".into(),
                    value: "at_need".into(),
                })),
            },
        ],
        ..Default::default()
    }
}

/// FuneralTech's vendor list, with its own category words.
fn rolodex_profile(values: &[(&str, &str)]) -> pb::ImportProfile {
    pb::ImportProfile {
        name: "FuneralTech vendors".into(),
        import_type: "rolodex".into(),
        source_headers: vec!["Vendor".into(), "Kind".into()],
        rules: vec![
            rule(Action::Copy(pb::CopyRule {
                from: "Vendor".into(),
                to: "name".into(),
            })),
            rule(map_values("Kind", "category", values)),
        ],
        ..Default::default()
    }
}

pub(crate) const CASES_CSV: &str = "Case No,Full Name,Died,Stage\n\
FT-1,Mary Ann Smith,03-04-25,Done\n\
FT-2,John Doe,12-31-24,Working\n";
const VENDORS_CSV: &str = "Vendor,Kind,Phone\n\
Rose Florist,Flowers,\n\
St Mark,Church,\n\
Wax Works,Candles,\n";

pub(crate) async fn create(
    client: &mut Client,
    p: pb::ImportProfile,
) -> Result<pb::ImportProfile, tonic::Status> {
    let created = client
        .create_profile(pb::CreateProfileRequest {
            profile: Some(p),
            request_id: uuid::Uuid::now_v7().to_string(),
            validate_only: false,
        })
        .await?
        .into_inner();
    created
        .profile
        .ok_or_else(|| tonic::Status::internal("no profile"))
}

fn files_with(cases: &str, vendors: &str) -> Vec<NewFile> {
    vec![
        NewFile::new("cases.csv", "cases", CASES_CSV).profile(cases),
        NewFile::new("vendors.csv", "rolodex", VENDORS_CSV).profile(vendors),
    ]
}

fn effects<'a>(report: &'a pb::AnalysisReport, file: &str) -> &'a [pb::RuleEffect] {
    report
        .files
        .iter()
        .find(|f| f.file_name == file)
        .map(|f| f.rule_effects.as_slice())
        .unwrap_or_default()
}

fn values(fields: &[pb::FieldValue]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| (f.field.clone(), f.value.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_profile_turns_another_systems_export_into_cases_and_rolodex() -> anyhow::Result<()>
{
    let env = TestEnv::start(Options::default()).await?;
    env.organization(ORG).await?;
    let mut client = env.client().await?;
    let cases = create(&mut client, cases_profile()).await?;
    let vendors = create(
        &mut client,
        rolodex_profile(&[("Flowers", "florist"), ("Church", "church")]),
    )
    .await?;
    assert_eq!((cases.version, vendors.version), (1, 1));

    // Without the profiles the files fail analysis as before, and the
    // upload suggests the profile whose headers the file has.
    let (plain, uploaded) = files::draft_with_files(
        &mut client,
        ORG,
        pb::FailurePolicy::ImportValidRows,
        &[NewFile::new("cases.csv", "cases", CASES_CSV)],
    )
    .await?;
    assert_eq!(uploaded[0].state, pb::FileState::Invalid as i32);
    let suggested: Vec<(String, bool)> = uploaded[0]
        .suggested_profiles
        .iter()
        .map(|s| {
            (
                s.profile.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
                s.complete,
            )
        })
        .collect();
    assert_eq!(suggested, vec![(cases.id.clone(), true)]);
    let report = files::analyze(&mut client, &plain).await?;
    assert!(report.blocking);
    assert!(
        files::finding_kinds(&report, "cases.csv")
            .contains(&"FINDING_KIND_MISSING_COLUMN".to_string()),
        "{:?}",
        files::finding_kinds(&report, "cases.csv")
    );

    // With them: analysis shows what each rule did and flags 'Candles'.
    let (id, uploaded) = files::draft_with_files(
        &mut client,
        ORG,
        pb::FailurePolicy::ImportValidRows,
        &files_with(&cases.id, &vendors.id),
    )
    .await?;
    for f in &uploaded {
        assert_eq!(f.state, pb::FileState::Ready as i32, "{f:?}");
        assert_eq!(f.profile.as_ref().map(|p| p.version), Some(1), "{f:?}");
    }
    let report = files::analyze(&mut client, &id).await?;
    let split = &effects(&report, "cases.csv")[0];
    assert_eq!(split.rows_changed, 2);
    assert_eq!(
        values(&split.examples[0].after),
        vec![
            ("Full Name".to_string(), "Mary Ann Smith".to_string()),
            ("deceased_first_name".to_string(), "Mary Ann".to_string()),
            ("deceased_last_name".to_string(), "Smith".to_string()),
        ]
    );
    let date = &effects(&report, "cases.csv")[1];
    // "Died" is an alias of date_of_death: the rule reads the column.
    assert_eq!(
        values(&date.examples[0].after).last(),
        Some(&("date_of_death".to_string(), "2025-03-04".to_string()))
    );
    let category = &effects(&report, "vendors.csv")[1];
    assert_eq!(category.rows_changed, 2, "{category:?}");
    // "Kind" is an alias of category: the rule maps the column in place.
    let example = &category.examples[0];
    assert_eq!(
        (values(&example.before), values(&example.after)),
        (
            vec![("category".to_string(), "Flowers".to_string())],
            vec![("category".to_string(), "florist".to_string())]
        )
    );
    let unmapped = files::finding(&report, "vendors.csv", pb::FindingKind::UnmappedValue)
        .ok_or_else(|| anyhow::anyhow!("no unmapped value: {report:?}"))?;
    assert_eq!(unmapped.count, 1);
    assert_eq!(
        (unmapped.samples[0].row, unmapped.samples[0].value.as_str()),
        (3, "Candles")
    );

    // A new version of a profile makes the analysis stale.
    let updated = client
        .update_profile(pb::UpdateProfileRequest {
            profile: Some(pb::ImportProfile {
                id: vendors.id.clone(),
                ..rolodex_profile(&[
                    ("Flowers", "florist"),
                    ("Church", "church"),
                    ("Candles", "vendor"),
                ])
            }),
            expected_version: 1,
            validate_only: false,
        })
        .await?
        .into_inner();
    assert_eq!(updated.files_updated, 1);
    assert_eq!(updated.profile.as_ref().map(|p| p.version), Some(2));
    assert!(
        get(&mut client, &id)
            .await?
            .analysis
            .is_some_and(|a| a.stale)
    );
    let refused = start(&mut client, &id)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("started stale"))?;
    assert_eq!(error_reason(&refused), "ANALYSIS_STALE");
    // An update from the old version is refused: someone else came first.
    let late = client
        .update_profile(pb::UpdateProfileRequest {
            profile: Some(pb::ImportProfile {
                id: vendors.id.clone(),
                ..rolodex_profile(&[("Flowers", "florist")])
            }),
            expected_version: 1,
            validate_only: false,
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a stale update was saved"))?;
    assert_eq!(late.code(), Code::Aborted);

    let report = files::analyze(&mut client, &id).await?;
    assert!(!report.blocking, "{report:?}");
    assert!(files::finding(&report, "vendors.csv", pb::FindingKind::UnmappedValue).is_none());
    start(&mut client, &id).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    let versions: Vec<i32> = done
        .files
        .iter()
        .filter_map(|f| f.profile.as_ref().map(|p| p.version))
        .collect();
    assert_eq!(
        versions,
        vec![1, 2],
        "each file records the version it used"
    );

    let stored = stored_cases(&env.db, ORG).await?;
    let ft1 = &stored["FT-1"].values;
    assert_eq!(
        (
            ft1[1].as_str(),
            ft1[3].as_str(),
            ft1[6].as_str(),
            ft1[7].as_str(),
            ft1[8].as_str()
        ),
        ("Mary Ann", "Smith", "2025-03-04", "at_need", "closed")
    );
    let ft2 = &stored["FT-2"].values;
    assert_eq!(
        (ft2[1].as_str(), ft2[6].as_str(), ft2[8].as_str()),
        ("John", "2024-12-31", "open")
    );
    let categories: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, category FROM rolodex_entries WHERE organization_id = $1 ORDER BY name",
    )
    .bind(ORG)
    .fetch_all(env.db.pool())
    .await?;
    assert_eq!(
        categories,
        vec![
            ("Rose Florist".to_string(), "florist".to_string()),
            ("St Mark".to_string(), "church".to_string()),
            ("Wax Works".to_string(), "vendor".to_string()),
        ]
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_profiles_are_refused_and_every_change_is_versioned_and_audited()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    env.organization(ORG).await?;
    let mut client = env.client().await?;

    let mut bad = cases_profile();
    bad.rules.push(rule(Action::Extract(pb::ExtractRule {
        column: "Nickname".into(),
        pattern: "(".into(),
        into: "suffix".into(),
    })));
    bad.rules.push(rule(Action::Copy(pb::CopyRule {
        from: "Full Name".into(),
        to: "favourite_colour".into(),
    })));
    let refused = create(&mut client, bad)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("saved"))?;
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(error_reason(&refused), "INVALID_PROFILE");
    let violations: Vec<(String, String)> = refused
        .get_error_details()
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        violations
            .iter()
            .any(|(f, d)| f == "profile.rules[4]" && d.contains("\"Nickname\"")),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|(f, d)| f == "profile.rules[5]" && d.contains("not a column of Cases")),
        "{violations:?}"
    );
    let mut cyclic = cases_profile();
    cyclic.rules = vec![
        rule(Action::Copy(pb::CopyRule {
            from: "suffix".into(),
            to: "deceased_middle_name".into(),
        })),
        rule(Action::Copy(pb::CopyRule {
            from: "deceased_middle_name".into(),
            to: "suffix".into(),
        })),
    ];
    let refused = create(&mut client, cyclic)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("saved"))?;
    assert!(
        refused.message().contains("from itself"),
        "{}",
        refused.message()
    );
    // Only super admins save profiles.
    let mut member = env.client_as(&MEMBER).await?;
    let denied = create(&mut member, cases_profile())
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("saved"))?;
    assert_eq!(denied.code(), Code::PermissionDenied);

    let first = create(&mut client, cases_profile()).await?;
    let taken = create(&mut client, cases_profile())
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("saved twice"))?;
    assert_eq!(taken.code(), Code::AlreadyExists);
    // A draft reads a file with version 1, whose split fills the names.
    let (draft, _) = files::draft_with_files(
        &mut client,
        ORG,
        pb::FailurePolicy::ImportValidRows,
        &[NewFile::new("cases.csv", "cases", CASES_CSV).profile(&first.id)],
    )
    .await?;
    assert!(!files::analyze(&mut client, &draft).await?.blocking);
    // Version 2 drops the split: the draft's file moves to it, and its
    // analysis finds the required names no header or rule provides.
    let mut second = cases_profile();
    second.id = first.id.clone();
    second.rules.remove(0);
    let moved = client
        .update_profile(pb::UpdateProfileRequest {
            profile: Some(second),
            expected_version: 0,
            validate_only: false,
        })
        .await?
        .into_inner();
    assert_eq!(moved.files_updated, 1);
    let report = files::analyze(&mut client, &draft).await?;
    let missing = files::finding(&report, "cases.csv", pb::FindingKind::MissingColumn)
        .ok_or_else(|| anyhow::anyhow!("no missing column: {report:?}"))?;
    assert!(report.blocking);
    assert!(
        missing.samples[0]
            .reason
            .contains("no rule of profile \"FuneralTech cases\" v2 fills it"),
        "{missing:?}"
    );
    let v1 = client
        .get_profile(pb::GetProfileRequest {
            profile_id: first.id.clone(),
            version: 1,
        })
        .await?
        .into_inner()
        .profile
        .ok_or_else(|| anyhow::anyhow!("no version 1"))?;
    let v2 = client
        .get_profile(pb::GetProfileRequest {
            profile_id: first.id.clone(),
            version: 0,
        })
        .await?
        .into_inner()
        .profile
        .ok_or_else(|| anyhow::anyhow!("no version 2"))?;
    assert_eq!(
        (v1.version, v1.rules.len(), v2.version, v2.rules.len()),
        (1, 4, 2, 3)
    );
    client
        .delete_profile(pb::DeleteProfileRequest {
            profile_id: first.id.clone(),
        })
        .await?;
    let listed = client
        .list_profiles(pb::ListProfilesRequest {
            import_type: "cases".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(
        listed.profiles.is_empty(),
        "a deleted profile is not offered: {listed:?}"
    );
    // A file cannot be uploaded with a deleted profile.
    let draft = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    let refused = files::upload(
        &mut client,
        &draft,
        &NewFile::new("c.csv", "cases", CASES_CSV).profile(&first.id),
    )
    .await
    .err()
    .ok_or_else(|| anyhow::anyhow!("uploaded with a deleted profile"))?;
    assert_eq!(error_reason(&refused), "PROFILE_DELETED");

    let actions: Vec<String> = client
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await?
        .into_inner()
        .events
        .iter()
        .map(|e| e.action.clone())
        .filter(|a| a.ends_with("_profile"))
        .collect();
    assert_eq!(
        actions,
        vec!["delete_profile", "update_profile", "create_profile"]
    );
    env.finish().await
}
