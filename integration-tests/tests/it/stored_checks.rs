//! Rows checked against what the organization stored in earlier imports, at
//! load: references to another import's records (with the columns they must
//! agree with) and a second flagged record of a group. The lookups join the
//! chunk's values with the stored table, which a load has just filled and
//! whose statistics may say it is empty.

use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

const FAMILY: &str = "case_number,first_name,last_name,relationship,is_next_of_kin\n";
const PAYMENTS: &str = "contract_number,paid_on,amount,method,reference,case_number\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_imports_are_checked_against_the_records_of_earlier_ones() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let first = [
        NewFile::new(
            "cases.csv",
            "cases",
            "case_number,deceased_first_name,deceased_last_name,date_of_birth,date_of_death\n\
             C1,Ann,Lee,1950-01-01,2020-01-01\nC2,Bob,Ray,1951-02-02,2021-02-02\n",
        ),
        NewFile::new(
            "family.csv",
            "family_and_friends",
            format!("{FAMILY}C1,Tom,Lee,son,yes\n"),
        ),
        NewFile::new(
            "contracts.csv",
            "contract_information",
            "contract_number,case_number,contract_date,total,subtotal,tax,discount\n\
             K1,C1,2024-02-28,5250.00,5000.00,250.00,0\n",
        ),
    ];
    let (id, _) = files::draft_with_files(
        &mut client,
        1042,
        pb::FailurePolicy::ImportValidRows,
        &first,
    )
    .await?;
    start(&mut client, &id).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");

    // C1 gets a second next of kin (refused), C2 its first (kept); a payment
    // of K1 naming its case, one naming another case than K1's, and one of a
    // contract no import brought.
    let second = [
        NewFile::new(
            "family.csv",
            "family_and_friends",
            format!("{FAMILY}C1,Ann,Lee,daughter,yes\nC2,Bo,Ray,son,yes\n"),
        ),
        NewFile::new(
            "payments.csv",
            "payments",
            format!(
                "{PAYMENTS}K1,2024-03-05,1000.00,check,1,C1\nK1,2024-03-06,200.00,check,2,C2\nK9,2024-03-07,50.00,cash,3,C1\n"
            ),
        ),
    ];
    let (id, _) = files::draft_with_files(
        &mut client,
        1042,
        pb::FailurePolicy::ImportValidRows,
        &second,
    )
    .await?;
    start(&mut client, &id).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::CompletedWithErrors);
    let reasons: Vec<(i64, &str)> = done
        .files
        .iter()
        .flat_map(|f| f.problems.iter().map(|p| (p.row, p.reason.as_str())))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                1,
                "case_number \"C1\" already has is_next_of_kin: C1+Tom+Lee"
            ),
            (
                2,
                "contract \"K1\" belongs to case_number \"C1\", not \"C2\""
            ),
            (3, "no contract matches \"K9\""),
        ]
    );
    let p = done.progress.unwrap_or_default();
    assert_eq!((p.rows_created, p.rows_failed), (2, 3), "{p:?}");
    let kin = "SELECT count(*) FROM case_family_members WHERE is_next_of_kin";
    assert_eq!(count(&env.db, kin).await?, 2, "one next of kin per case");
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM case_family_members WHERE first_name = 'Ann'"
        )
        .await?,
        0
    );
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM payments WHERE contract_number = 'K1' AND amount = 1000"
        )
        .await?,
        1
    );
    assert_eq!(count(&env.db, "SELECT count(*) FROM payments").await?, 1);
    env.finish().await
}

fn nothing_read_ahead(config: &mut Config) {
    config.worker_read_ahead = false;
}

/// A Cases import of several chunks names known and unknown locations and
/// directors in every chunk. With read-ahead, the worker reads and parses
/// each chunk while the chunk before it is written, and checks it after;
/// the import's outcome, the rows it failed and why, and the references it
/// stored are those of a worker that reads nothing ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_references_resolve_alike_with_and_without_read_ahead() -> anyhow::Result<()> {
    let mut text = String::from(
        "case_number,deceased_first_name,deceased_last_name,location_name,director_email\n",
    );
    // C2, C5 and C8 name no location of the organization, C4 and C8 no
    // staff user; the others resolve (a location's name in any case).
    for i in 1..=9 {
        let location = ["Main Chapel", "north chapel", "Harbor Chapel"][i % 3];
        let director = match i {
            4 | 8 => "nobody@riverside.example",
            _ if i % 2 == 1 => "director@riverside.example",
            _ => "arranger@riverside.example",
        };
        text.push_str(&format!("C{i},Ann,Lee,{location},{director}\n"));
    }
    let mut outcomes = Vec::new();
    for configure in [None, Some(nothing_read_ahead as fn(&mut Config))] {
        let env = TestEnv::start(Options {
            chunk_rows: 2,
            configure,
            ..Options::default()
        })
        .await?;
        let mut client = env.client().await?;
        let file = NewFile::new("cases.csv", "cases", text.clone());
        let (id, _) = files::draft_with_files(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            &[file],
        )
        .await?;
        start(&mut client, &id).await?;
        let done = wait_terminal(&mut client, &id).await?;
        let mut problems: Vec<(i64, String, String)> = done
            .files
            .iter()
            .flat_map(|f| f.problems.iter())
            .map(|p| (p.row, p.column.clone(), p.reason.clone()))
            .collect();
        problems.sort();
        let stored: Vec<(String, String, String)> = records::stored_cases(&env.db, 1042)
            .await?
            .into_iter()
            .map(|(key, case)| (key, case.values[10].clone(), case.values[11].clone()))
            .collect();
        outcomes.push((state(&done), problems, stored));
        env.finish().await?;
    }
    let (state, problems, stored) = &outcomes[0];
    assert_eq!(*state, pb::ImportState::CompletedWithErrors);
    // C2, C4, C5 and C8 (rows 2, 4, 5, 8): failures in four of the five
    // chunks of two rows.
    let failed: std::collections::BTreeSet<i64> = problems.iter().map(|p| p.0).collect();
    assert_eq!(
        failed.into_iter().collect::<Vec<_>>(),
        [2, 4, 5, 8],
        "{problems:?}"
    );
    let expected: Vec<(String, String, String)> = [
        ("C1", "North Chapel", "director@riverside.example"),
        ("C3", "Main Chapel", "director@riverside.example"),
        ("C6", "Main Chapel", "arranger@riverside.example"),
        ("C7", "North Chapel", "director@riverside.example"),
        ("C9", "Main Chapel", "director@riverside.example"),
    ]
    .iter()
    .map(|(c, l, d)| (c.to_string(), l.to_string(), d.to_string()))
    .collect();
    assert_eq!(*stored, expected);
    assert_eq!(outcomes[0], outcomes[1], "read ahead, then in turn");
    Ok(())
}
