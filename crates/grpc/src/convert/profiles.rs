//! Import profiles and transform rules between the API and the domain.

use passare_imports_app::error::ApiError;
use passare_imports_app::profiles::{ProfileInput, Suggestion};
use passare_imports_domain::transform::{
    Action, Condition, LetterCase, ProfileVersion, Rule, RuleEffect, Test,
};
use passare_imports_proto::v1 as pb;
use passare_imports_store::profiles::Profile;

/// A profile as the API shows it.
pub fn profile(p: &Profile) -> pb::ImportProfile {
    let mapping: Vec<(String, String)> =
        serde_json::from_value(p.column_mapping.clone()).unwrap_or_default();
    let rules: Vec<Rule> = serde_json::from_value(p.rules.clone()).unwrap_or_default();
    pb::ImportProfile {
        id: p.id.to_string(),
        name: p.name.clone(),
        description: p.description.clone(),
        import_type: p.import_type.clone(),
        organization_id: p.organization_id.map(|o| o.to_string()).unwrap_or_default(),
        column_mapping: mapping
            .into_iter()
            .map(|(header, column)| pb::ProfileColumnMapping { header, column })
            .collect(),
        source_headers: serde_json::from_value(p.source_headers.clone()).unwrap_or_default(),
        rules: rules.iter().map(rule).collect(),
        version: p.version,
        create_time: Some(super::timestamp(&p.created_at)),
        update_time: Some(super::timestamp(&p.updated_at)),
        updated_by: p.updated_by.clone(),
        delete_time: p.deleted_at.as_ref().map(super::timestamp),
    }
}

pub fn suggestion(s: &Suggestion) -> pb::ProfileSuggestion {
    pb::ProfileSuggestion {
        profile: Some(profile(&s.profile)),
        matched_headers: s.matched as i32,
        complete: s.complete,
    }
}

pub fn applied(p: &ProfileVersion) -> pb::AppliedProfile {
    pb::AppliedProfile {
        profile_id: p.profile_id.to_string(),
        name: p.name.clone(),
        version: p.version,
    }
}

pub fn rule_effect(e: &RuleEffect) -> pb::RuleEffect {
    let fields = |values: &[(String, String)]| {
        values
            .iter()
            .map(|(field, value)| pb::FieldValue {
                field: field.clone(),
                value: value.clone(),
            })
            .collect()
    };
    pb::RuleEffect {
        rule: e.rule as i32,
        summary: e.summary.clone(),
        rows_changed: e.rows_changed as i64,
        examples: e
            .examples
            .iter()
            .map(|x| pb::RuleExample {
                row: x.row as i64,
                before: fields(&x.before),
                after: fields(&x.after),
            })
            .collect(),
    }
}

/// What a request says a profile is.
pub fn input(p: &pb::ImportProfile) -> Result<ProfileInput, ApiError> {
    let rules = p
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule_of(r, &format!("profile.rules[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ProfileInput {
        name: p.name.clone(),
        description: p.description.clone(),
        column_mapping: p
            .column_mapping
            .iter()
            .map(|m| (m.header.clone(), m.column.clone()))
            .collect(),
        source_headers: p.source_headers.clone(),
        rules,
    })
}

fn rule_of(r: &pb::TransformRule, field: &str) -> Result<Rule, ApiError> {
    use pb::transform_rule::Action as A;
    let action = match r.action.as_ref() {
        None => return Err(ApiError::invalid(field, "names no action")),
        Some(A::Copy(c)) => Action::Copy {
            from: c.from.clone(),
            to: c.to.clone(),
        },
        Some(A::MapValues(m)) => Action::MapValues {
            column: m.column.clone(),
            into: m.into.clone(),
            values: m
                .values
                .iter()
                .map(|v| (v.from.clone(), v.to.clone()))
                .collect(),
            default: m.default_value.clone(),
            keep_unmapped: m.keep_unmapped,
            match_case: m.match_case,
        },
        Some(A::DefaultValue(d)) => Action::Default {
            column: d.column.clone(),
            value: d.value.clone(),
        },
        Some(A::Trim(t)) => Action::Trim {
            column: t.column.clone(),
        },
        Some(A::ChangeCase(c)) => Action::Case {
            column: c.column.clone(),
            to: match pb::LetterCase::try_from(c.to) {
                Ok(pb::LetterCase::Upper) => LetterCase::Upper,
                Ok(pb::LetterCase::Lower) => LetterCase::Lower,
                Ok(pb::LetterCase::Title) => LetterCase::Title,
                _ => {
                    return Err(ApiError::invalid(
                        &format!("{field}.change_case.to"),
                        "is required",
                    ));
                }
            },
        },
        Some(A::Split(s)) => Action::Split {
            column: s.column.clone(),
            separator: s.separator.clone(),
            into: s.into.clone(),
            from_end: s.from_end,
        },
        Some(A::Join(j)) => Action::Join {
            columns: j.columns.clone(),
            separator: j.separator.clone(),
            into: j.into.clone(),
        },
        Some(A::Extract(x)) => Action::Extract {
            column: x.column.clone(),
            pattern: x.pattern.clone(),
            into: x.into.clone(),
        },
        Some(A::ReformatDate(d)) => Action::Date {
            column: d.column.clone(),
            pattern: d.pattern.clone(),
            into: d.into.clone(),
        },
    };
    let when = match &r.when {
        None => None,
        Some(c) => Some(Condition {
            column: c.column.clone(),
            test: match pb::ConditionTest::try_from(c.test) {
                Ok(pb::ConditionTest::Equals) => Test::Equals,
                Ok(pb::ConditionTest::NotEquals) => Test::NotEquals,
                Ok(pb::ConditionTest::OneOf) => Test::OneOf,
                Ok(pb::ConditionTest::Matches) => Test::Matches,
                Ok(pb::ConditionTest::Empty) => Test::Empty,
                Ok(pb::ConditionTest::NotEmpty) => Test::NotEmpty,
                _ => {
                    return Err(ApiError::invalid(
                        &format!("{field}.when.test"),
                        "is required",
                    ));
                }
            },
            values: c.values.clone(),
        }),
    };
    Ok(Rule { when, action })
}

fn rule(r: &Rule) -> pb::TransformRule {
    use pb::transform_rule::Action as A;
    let action = match &r.action {
        Action::Copy { from, to } => A::Copy(pb::CopyRule {
            from: from.clone(),
            to: to.clone(),
        }),
        Action::MapValues {
            column,
            into,
            values,
            default,
            keep_unmapped,
            match_case,
        } => A::MapValues(pb::MapValuesRule {
            column: column.clone(),
            into: into.clone(),
            values: values
                .iter()
                .map(|(from, to)| pb::ValueMapping {
                    from: from.clone(),
                    to: to.clone(),
                })
                .collect(),
            default_value: default.clone(),
            keep_unmapped: *keep_unmapped,
            match_case: *match_case,
        }),
        Action::Default { column, value } => A::DefaultValue(pb::DefaultRule {
            column: column.clone(),
            value: value.clone(),
        }),
        Action::Trim { column } => A::Trim(pb::TrimRule {
            column: column.clone(),
        }),
        Action::Case { column, to } => A::ChangeCase(pb::CaseRule {
            column: column.clone(),
            to: match to {
                LetterCase::Upper => pb::LetterCase::Upper,
                LetterCase::Lower => pb::LetterCase::Lower,
                LetterCase::Title => pb::LetterCase::Title,
            } as i32,
        }),
        Action::Split {
            column,
            separator,
            into,
            from_end,
        } => A::Split(pb::SplitRule {
            column: column.clone(),
            separator: separator.clone(),
            into: into.clone(),
            from_end: *from_end,
        }),
        Action::Join {
            columns,
            separator,
            into,
        } => A::Join(pb::JoinRule {
            columns: columns.clone(),
            separator: separator.clone(),
            into: into.clone(),
        }),
        Action::Extract {
            column,
            pattern,
            into,
        } => A::Extract(pb::ExtractRule {
            column: column.clone(),
            pattern: pattern.clone(),
            into: into.clone(),
        }),
        Action::Date {
            column,
            pattern,
            into,
        } => A::ReformatDate(pb::DateRule {
            column: column.clone(),
            pattern: pattern.clone(),
            into: into.clone(),
        }),
    };
    pb::TransformRule {
        when: r.when.as_ref().map(|c| pb::RuleCondition {
            column: c.column.clone(),
            test: match c.test {
                Test::Equals => pb::ConditionTest::Equals,
                Test::NotEquals => pb::ConditionTest::NotEquals,
                Test::OneOf => pb::ConditionTest::OneOf,
                Test::Matches => pb::ConditionTest::Matches,
                Test::Empty => pb::ConditionTest::Empty,
                Test::NotEmpty => pb::ConditionTest::NotEmpty,
            } as i32,
            values: c.values.clone(),
        }),
        action: Some(action),
    }
}
