//! `docs/openelb-fields.md` lists every path of OpenELB's CRD schemas with what oxelb does with it,
//! and agrees with the speaker's list of fields it reports as not applied
//! (`oxelb_speaker_core::unapplied`).
//!
//! The table: one section `## <Kind> <version>` per kind and version, one row per path,
//! `` | `path` | behaviour | how, or why not | ``, the behaviour one of `applied`, `refused`,
//! `no effect`, `not yet`. Checked: every reference path has exactly one row and every row names a
//! reference path; every row has a behaviour and a reason; every file an `applied` row cites
//! exists; the counts the page states are the table's; an object's row is `applied` exactly when
//! one of its fields is; and the `no effect`/`not yet` spec rows of BgpConf and BgpPeer v1alpha2
//! are exactly the fields the speaker can report, with the same behaviour.

use std::collections::{BTreeMap, BTreeSet};

use oxelb_speaker_core::unapplied::{BGP_CONF_FIELDS, BGP_PEER_FIELDS};
use oxelb_tests::workspace_root;

#[path = "../../../crds/tests/support/openelb_paths.rs"]
mod openelb_paths;

const PAGE: &str = "docs/openelb-fields.md";
const BEHAVIOURS: [&str; 4] = ["applied", "refused", "no effect", "not yet"];

/// (kind, version, path) -> (behaviour, reason, line).
type Table = BTreeMap<(String, String, String), (String, String, usize)>;

/// The table of `text`, and the problems of its shape (duplicate rows, rows outside a section,
/// malformed rows).
fn parse(text: &str) -> (Table, Vec<String>) {
    let mut table = Table::new();
    let mut errors = Vec::new();
    let mut section: Option<(String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if let Some(heading) = line.strip_prefix("## ") {
            let words: Vec<&str> = heading.split_whitespace().collect();
            section = match words.as_slice() {
                [kind, version] if version.starts_with("v1alpha") => {
                    Some(((*kind).to_owned(), (*version).to_owned()))
                }
                _ => None,
            };
            continue;
        }
        let Some(row) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = row.trim_end_matches('|').split(" | ").map(str::trim).collect();
        let [path, behaviour, reason] = cells.as_slice() else {
            errors.push(format!("{PAGE}:{line_no}: not a row of three cells: {line}"));
            continue;
        };
        let Some((kind, version)) = &section else {
            errors.push(format!(
                "{PAGE}:{line_no}: a row outside a `## Kind version` section"
            ));
            continue;
        };
        let path = path.trim_end_matches('`').to_owned();
        let key = (kind.clone(), version.clone(), path.clone());
        let value = ((*behaviour).to_owned(), (*reason).to_owned(), line_no);
        if table.insert(key, value).is_some() {
            errors.push(format!("{PAGE}:{line_no}: {kind} {version} {path} listed twice"));
        }
    }
    (table, errors)
}

fn page() -> (Table, Vec<String>, String) {
    let text = std::fs::read_to_string(workspace_root().join(PAGE)).unwrap_or_else(|e| panic!("{PAGE}: {e}"));
    let (table, errors) = parse(&text);
    (table, errors, text)
}

fn reference() -> Vec<(String, String, String)> {
    openelb_paths::reference_paths(&workspace_root().join(openelb_paths::FIXTURES))
}

/// Everything wrong with `table` against `reference` (and the page's stated counts in `text`).
fn table_errors(table: &Table, reference: &[(String, String, String)], text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let wanted: BTreeSet<&(String, String, String)> = reference.iter().collect();
    for key in reference {
        match table.get(key) {
            None => errors.push(format!("{} {} {}: missing from {PAGE}", key.0, key.1, key.2)),
            Some((behaviour, reason, line)) => {
                if !BEHAVIOURS.contains(&behaviour.as_str()) {
                    errors.push(format!(
                        "{PAGE}:{line}: {}: behaviour {behaviour:?} is none of {BEHAVIOURS:?}",
                        key.2
                    ));
                }
                if reason.len() < 8 {
                    errors.push(format!("{PAGE}:{line}: {}: says no how or why", key.2));
                }
            }
        }
    }
    for (key, (_, _, line)) in table {
        if !wanted.contains(key) {
            errors.push(format!(
                "{PAGE}:{line}: {} {} {}: not a path of OpenELB's schema",
                key.0, key.1, key.2
            ));
        }
    }
    // The counts the page states.
    let count = |b: &str| table.values().filter(|(behaviour, _, _)| behaviour == b).count();
    let stated = format!(
        "**{} paths: {} applied, {} refused, {} no effect, {} not yet.**",
        table.len(),
        count("applied"),
        count("refused"),
        count("no effect"),
        count("not yet")
    );
    if !text.contains(&stated) {
        errors.push(format!("{PAGE}: the counts are not stated as {stated}"));
    }
    errors
}

#[test]
fn the_field_table_lists_every_openelb_path_once_with_its_behaviour() {
    let (table, mut errors, text) = page();
    let reference = reference();
    assert_eq!(reference.len(), 193, "OpenELB v0.6's schemas");
    errors.extend(table_errors(&table, &reference, &text));
    assert!(errors.is_empty(), "{PAGE}:\n  {}", errors.join("\n  "));
}

/// The directories of the repository a row may cite files in.
const CODE_DIRS: [&str; 7] = [
    "speaker/",
    "controller/",
    "crds/",
    "runtime/",
    "config/",
    "tests/",
    "docs/",
];

/// Whether `path` of `kind`/`version` has fields of its own in `table`.
fn has_fields(table: &Table, kind: &str, version: &str, path: &str) -> bool {
    table.keys().any(|(k, v, p)| {
        k == kind
            && v == version
            && (p.starts_with(&format!("{path}.")) || p.starts_with(&format!("{path}[]")))
    })
}

#[test]
fn the_files_rows_cite_exist_and_applied_fields_cite_some() {
    let (table, _, _) = page();
    let mut missing = Vec::new();
    for ((kind, version, path), (behaviour, reason, line)) in &table {
        let spans: Vec<&str> = reason.split('`').skip(1).step_by(2).collect();
        let files: Vec<&str> = spans
            .iter()
            .copied()
            .filter(|span| CODE_DIRS.iter().any(|dir| span.starts_with(dir)))
            .collect();
        for file in &files {
            if !workspace_root().join(file.trim_end_matches('/')).exists() {
                missing.push(format!("{PAGE}:{line}: {path}: {file} does not exist"));
            }
        }
        let field = !has_fields(&table, kind, version, path);
        if behaviour == "applied" && field && path.starts_with("spec") && spans.is_empty() {
            missing.push(format!(
                "{PAGE}:{line}: {path}: an applied field names where (a file or a field)"
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn an_object_is_applied_exactly_when_one_of_its_fields_is() {
    let (table, _, _) = page();
    let mut errors = Vec::new();
    for ((kind, version, path), (behaviour, _, line)) in &table {
        let below: Vec<&String> = table
            .iter()
            .filter(|((k, v, p), _)| {
                k == kind
                    && v == version
                    && (p.starts_with(&format!("{path}.")) || p.starts_with(&format!("{path}[]")))
            })
            .map(|(_, (b, _, _))| b)
            .collect();
        if below.is_empty() {
            continue;
        }
        let any_applied = below.iter().any(|b| *b == "applied");
        let consistent = if behaviour == "applied" {
            any_applied
        } else {
            !any_applied && below.contains(&behaviour)
        };
        if !consistent {
            errors.push(format!(
                "{PAGE}:{line}: {kind} {version} {path} is {behaviour}, its fields are {below:?}"
            ));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn the_table_and_the_speakers_report_agree() {
    let (table, _, _) = page();
    for (kind, reportable) in [
        ("BgpConf", &BGP_CONF_FIELDS[..]),
        ("BgpPeer", &BGP_PEER_FIELDS[..]),
    ] {
        let leaves: BTreeMap<&str, &str> = table
            .iter()
            .filter(|((k, v, p), _)| k == kind && v == "v1alpha2" && p.starts_with("spec."))
            .filter(|((k, v, p), _)| {
                // Leaves only: an object's row summarises its fields (checked above).
                !table.keys().any(|(k2, v2, p2)| {
                    k2 == k
                        && v2 == v
                        && (p2.starts_with(&format!("{p}.")) || p2.starts_with(&format!("{p}[]")))
                })
            })
            .filter(|(_, (b, _, _))| b == "no effect" || b == "not yet")
            .map(|((_, _, p), (b, _, _))| (p.as_str(), b.as_str()))
            .collect();
        let reported: BTreeMap<&str, &str> = reportable
            .iter()
            .map(|f| (f.path, f.behaviour.as_str()))
            .collect();
        assert_eq!(
            leaves, reported,
            "{kind} v1alpha2: the `no effect`/`not yet` rows of {PAGE} (left) and the fields \
             oxelb_speaker_core::unapplied reports (right) must be the same, with the same behaviour"
        );
    }
}

#[test]
fn the_checks_catch_a_missing_an_extra_and_a_wrong_row() {
    // Guard against checks that pass everything.
    let text = "**2 paths: 2 applied, 0 refused, 0 no effect, 0 not yet.**\n\n## Eip v1alpha2\n\n\
        | path | behaviour | how, or why not |\n|---|---|---|\n\
        | `spec` | applied | a pool of addresses |\n\
        | `spec.colour` | maybe | nothing to see |\n";
    let (table, shape) = parse(text);
    assert!(shape.is_empty(), "{shape:?}");
    let reference = [
        ("Eip".to_owned(), "v1alpha2".to_owned(), "spec".to_owned()),
        ("Eip".to_owned(), "v1alpha2".to_owned(), "spec.address".to_owned()),
    ];
    let errors = table_errors(&table, &reference, text);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("Eip v1alpha2 spec.address: missing"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("spec.colour: not a path of OpenELB's schema"),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("the counts are not stated as **2 paths: 1 applied,"),
        "{errors:?}"
    );
    // The wrong behaviour and wrong counts, once the paths are right.
    let text = text.replace("spec.colour", "spec.address");
    let (table, _) = parse(&text);
    let errors = table_errors(&table, &reference, &text);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("behaviour \"maybe\" is none of"))
            && errors.iter().any(|e| e.contains(
                "the counts are not stated as **2 paths: 1 applied, 0 refused, 0 no effect, 0 not yet.**"
            )),
        "{errors:?}"
    );
}
