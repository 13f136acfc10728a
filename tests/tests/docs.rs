//! The manual does not lie: every YAML example in `README.md` and `docs/**/*.md` is an object the API
//! server keeps as written, and every relative link in `README.md`, `ARCHITECTURE.md` and
//! `docs/**/*.md` leads somewhere.
//!
//! The convention (also at the top of `docs/README.md`), by the info string of a fenced block:
//!
//! - ```` ```yaml ```` (or `yml`): complete objects, several separated by `---`. Each document must
//!   parse and name its apiVersion and kind; an OpenELB object (Eip, BgpConf, BgpPeer in
//!   `network.kubesphere.io/v1alpha2` or `v1alpha1`) must fit the installed CRD schema of its
//!   version (`config/crd/`) and round-trip through its Rust type; a core object (Service,
//!   Namespace, Deployment, ...) must round-trip through its k8s-openapi type; the addresses in it
//!   must be documentation addresses (the same checks as `examples.rs` makes of `examples/`).
//! - ```` ```yaml fragment ````: a deliberate excerpt; it must parse, nothing more.
//! - ```` ```yaml fragment Kind ```` (e.g. `yaml fragment BgpPeer`): an excerpt of a Kind's
//!   top-level fields (`spec:` ...); it is completed with that kind's apiVersion and a name and
//!   checked as a complete object.
//!
//! Links: an inline link `[text](target)` that is not a URL must name a file or directory of the
//! repository, relative to the Markdown file, and an anchor (`#heading`, `file.md#heading`) must be
//! the GitHub slug of a heading of that file.
//!
//! The field table `docs/openelb-fields.md` lists every path of OpenELB's CRD schemas with what
//! oxelb does with it; [`openelb_fields`] checks it against the schemas and the speaker's report.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oxelb_tests::schema::{installed_schemas, object_violations, openelb_version};
use oxelb_tests::{Document, workspace_root};
use serde::Deserialize;
use serde_json::Value;

mod common;
use common::{address_violations, api_version_of, typed};

/// `docs/openelb-fields.md`: every OpenELB path, what oxelb does with it.
#[path = "docs/openelb_fields.rs"]
mod openelb_fields;

/// A fenced YAML block of a Markdown file.
#[derive(Debug)]
struct Block {
    /// The Markdown file, relative to the workspace root.
    file: PathBuf,
    /// The line of the opening fence, counting from 1.
    line: usize,
    /// What the info string says the block holds.
    form: Form,
    /// The block's text, its indentation removed.
    text: String,
}

/// What a YAML block holds, by its info string.
#[derive(Debug, Clone, PartialEq)]
enum Form {
    /// ```` ```yaml ````: complete objects.
    Complete,
    /// ```` ```yaml fragment ````: an excerpt that only has to parse.
    Fragment,
    /// ```` ```yaml fragment Kind ````: the top-level fields of a Kind.
    FragmentOf(String),
}

/// How many complete objects (and completed fragments) a check went through.
#[derive(Debug, Default)]
struct Checked {
    objects: usize,
    openelb: usize,
    fragments: usize,
}

/// The Markdown files of the manual: `README.md`, `ARCHITECTURE.md` and everything under `docs/`.
fn manual_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md"]
        .iter()
        .map(PathBuf::from)
        .collect();
    collect_markdown(&root, Path::new("docs"), &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.starts_with("docs")),
        "no Markdown file under docs/"
    );
    files
}

fn collect_markdown(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let rel = dir.join(entry.file_name());
        if root.join(&rel).is_dir() {
            collect_markdown(root, &rel, out);
        } else if rel.extension().is_some_and(|e| e == "md") {
            out.push(rel);
        }
    }
}

fn read(file: &Path) -> String {
    let path = workspace_root().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fence line's marker (```` ``` ```` or `~~~`, or longer) and info string, if `line` is one.
fn fence(line: &str) -> Option<(String, &str)> {
    let trimmed = line.trim_start();
    let marker_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = trimmed.chars().take_while(|c| *c == marker_char).count();
    (len >= 3).then(|| (marker_char.to_string().repeat(len), trimmed[len..].trim()))
}

/// Every fenced block of `text` as (line of the opening fence, info string, content), the content
/// with the opening fence's indentation removed.
fn fenced_blocks(text: &str) -> Vec<(usize, String, String)> {
    /// A block being read: its opening line, fence marker, info string, indentation and lines.
    struct Open<'a> {
        start: usize,
        marker: String,
        info: String,
        indent: usize,
        lines: Vec<&'a str>,
    }
    let mut blocks = Vec::new();
    let mut open: Option<Open> = None;
    for (i, line) in text.lines().enumerate() {
        let fenced = fence(line);
        let Some(block) = open.as_mut() else {
            if let Some((marker, info)) = fenced {
                open = Some(Open {
                    start: i + 1,
                    marker,
                    info: info.to_string(),
                    indent: line.len() - line.trim_start().len(),
                    lines: Vec::new(),
                });
            }
            continue;
        };
        let closes =
            fenced.is_some_and(|(closing, info)| info.is_empty() && closing.starts_with(&block.marker));
        if !closes {
            block.lines.push(line);
            continue;
        }
        let content: Vec<&str> = block
            .lines
            .iter()
            .map(|l| &l[block.indent.min(l.len() - l.trim_start().len())..])
            .collect();
        blocks.push((block.start, block.info.clone(), content.join("\n")));
        open = None;
    }
    if let Some(block) = open {
        blocks.push((
            block.start,
            block.info.clone(),
            format!("<unclosed fence of {:?}>", block.info),
        ));
    }
    blocks
}

/// The YAML blocks of one Markdown text; `Err` for an info string that starts with `yaml` but is
/// not one of the forms the convention knows.
fn yaml_blocks(file: &Path, text: &str) -> Vec<Result<Block, String>> {
    fenced_blocks(text)
        .into_iter()
        .filter_map(|(line, info, text)| {
            let mut words = info.split_whitespace();
            let first = words.next()?.to_ascii_lowercase();
            if first != "yaml" && first != "yml" {
                return None;
            }
            let rest: Vec<&str> = words.collect();
            let form = match rest.as_slice() {
                [] => Form::Complete,
                ["fragment"] => Form::Fragment,
                ["fragment", kind] => Form::FragmentOf((*kind).to_string()),
                _ => {
                    return Some(Err(format!(
                        "{}:{line}: info string {info:?}: write `yaml`, `yaml fragment` or `yaml fragment Kind`",
                        file.display()
                    )));
                }
            };
            Some(Ok(Block {
                file: file.to_path_buf(),
                line,
                form,
                text,
            }))
        })
        .collect()
}

/// Checks one YAML block; appends what is wrong to `errors`.
fn check_block(block: &Block, checked: &mut Checked, errors: &mut Vec<String>) {
    let at = format!("{}:{}", block.file.display(), block.line);
    for (index, deserializer) in serde_yaml::Deserializer::from_str(&block.text).enumerate() {
        let value = match Value::deserialize(deserializer) {
            Ok(Value::Null) => continue,
            Ok(value) => value,
            Err(e) => {
                // The parser cannot resynchronise after an error: the rest of the block is unread.
                errors.push(format!("{at}: document #{index} is not valid YAML: {e}"));
                break;
            }
        };
        let value = match &block.form {
            Form::Complete => value,
            Form::Fragment => {
                checked.fragments += 1;
                continue;
            }
            Form::FragmentOf(kind) => {
                let (Some(api_version), Value::Object(fields)) = (api_version_of(kind), value) else {
                    errors.push(format!(
                        "{at}: `yaml fragment {kind}`: {kind} is not a kind the test knows, or the \
                         fragment is not a map of top-level fields"
                    ));
                    continue;
                };
                checked.fragments += 1;
                let mut object = serde_json::json!({
                    "apiVersion": api_version,
                    "kind": kind,
                    "metadata": {"name": "fragment"},
                });
                if let Some(map) = object.as_object_mut() {
                    map.extend(fields);
                }
                object
            }
        };
        let doc = Document {
            path: PathBuf::from(&at),
            index,
            value,
        };
        check_object(&doc, checked, errors);
    }
}

/// Checks one complete object of the manual as `examples.rs` checks those of `examples/`.
fn check_object(doc: &Document, checked: &mut Checked, errors: &mut Vec<String>) {
    if doc.api_version().is_none() || doc.kind().is_none() {
        errors.push(format!(
            "{doc}: not a complete Kubernetes object (no apiVersion or kind); mark a deliberate \
             excerpt with ```yaml fragment (or ```yaml fragment Kind)"
        ));
        return;
    }
    checked.objects += 1;
    let example = match typed(doc) {
        Ok(example) => example,
        Err(e) => {
            errors.push(e);
            return;
        }
    };
    errors.extend(address_violations(&doc.to_string(), &example));
    if let Some(version) = doc.api_version().and_then(openelb_version) {
        checked.openelb += 1;
        let kind = doc.kind().unwrap_or_default();
        match installed_schemas(version) {
            Ok(schemas) => match schemas.get(kind) {
                Some(schema) => {
                    let violations = object_violations(doc, schema);
                    if !violations.is_empty() {
                        errors.push(format!("{doc}:\n  {}", violations.join("\n  ")));
                    }
                }
                None => errors.push(format!("{doc}: config/crd/ has no {version} CRD for {kind}")),
            },
            Err(e) => errors.push(format!("{doc}: {e}")),
        }
    }
}

/// Checks every YAML block of one Markdown text.
fn check_markdown(file: &Path, text: &str, checked: &mut Checked) -> Vec<String> {
    let mut errors = Vec::new();
    for block in yaml_blocks(file, text) {
        match block {
            Ok(block) => check_block(&block, checked, &mut errors),
            Err(e) => errors.push(e),
        }
    }
    errors
}

#[test]
fn every_yaml_example_of_the_manual_is_a_valid_object() {
    let mut checked = Checked::default();
    let mut errors = Vec::new();
    for file in manual_files() {
        errors.extend(check_markdown(&file, &read(&file), &mut checked));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
    assert!(
        checked.objects >= 5 && checked.openelb >= 4 && checked.fragments >= 1,
        "fewer YAML examples than the manual has: {checked:?}"
    );
}

#[test]
fn the_readme_shows_a_first_eip_and_service() {
    let text = read(Path::new("README.md"));
    let kinds: BTreeSet<String> = yaml_blocks(Path::new("README.md"), &text)
        .into_iter()
        .flatten()
        .filter(|b| b.form == Form::Complete)
        .flat_map(|b| {
            serde_yaml::Deserializer::from_str(&b.text)
                .filter_map(|d| Value::deserialize(d).ok())
                .filter_map(|v| v.get("kind").and_then(Value::as_str).map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    for kind in ["Eip", "Service"] {
        assert!(
            kinds.contains(kind),
            "README.md has no complete {kind}: {kinds:?}"
        );
    }
}

#[test]
fn a_misspelled_field_in_a_doc_example_fails() {
    let text = "Some prose.\n\n```yaml\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\n\
                metadata:\n  name: eip-typo\nspec:\n  address: 192.0.2.0/28\n  protocl: layer2\n```\n";
    let errors = check_markdown(Path::new("inline.md"), text, &mut Checked::default());
    assert!(
        errors
            .iter()
            .any(|e| e.contains("inline.md:3") && e.contains("/spec/protocl")),
        "{errors:?}"
    );
}

#[test]
fn a_misspelled_field_in_a_second_document_or_a_fragment_fails() {
    let text = "```yaml\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\n\
                kind: Service\nmetadata: {name: web}\nspec: {type: LoadBalancer, loadBalancerIp: 192.0.2.1}\n\
                ```\n\n```yaml fragment BgpPeer\nspec:\n  conf: {peerAs: 64513, neighbourAddress: 192.0.2.1}\n```\n";
    let errors = check_markdown(Path::new("inline.md"), text, &mut Checked::default());
    assert!(
        errors
            .iter()
            .any(|e| e.contains("inline.md:1#1") && e.contains("/spec/loadBalancerIp")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("inline.md:12#0") && e.contains("neighbourAddress")),
        "{errors:?}"
    );
}

#[test]
fn a_wrong_type_an_address_outside_documentation_ranges_and_an_unmarked_excerpt_fail() {
    let text = "```yaml\napiVersion: network.kubesphere.io/v1alpha1\nkind: BgpConf\nmetadata: {name: default}\n\
                spec: {as: \"64512\"}\n---\napiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\n\
                metadata: {name: private}\nspec: {address: 10.0.0.0/24}\n```\n\n\
                ```yaml\nspec:\n  address: 192.0.2.0/24\n```\n\n```yaml fragmnet\nspec: {}\n```\n\n\
                ```yaml\nkind: [unclosed\n```\n";
    let errors = check_markdown(Path::new("inline.md"), text, &mut Checked::default());
    let wanted = [
        ("inline.md:1#0", "64512"),
        ("inline.md:1#1", "10.0.0.0 is not in a documentation range"),
        ("inline.md:13#0", "not a complete Kubernetes object"),
        ("inline.md:18", "info string"),
        ("inline.md:22", "not valid YAML"),
    ];
    for (at, what) in wanted {
        assert!(
            errors.iter().any(|e| e.contains(at) && e.contains(what)),
            "no error at {at} about {what:?}: {errors:#?}"
        );
    }
}

#[test]
fn fences_are_found_with_their_info_string_and_indentation() {
    let text = "a\n\n  ```yaml fragment\n  spec:\n    x: 1\n  ```\n\n````sh\n```yaml\n````\n";
    let blocks = fenced_blocks(text);
    assert_eq!(
        blocks,
        vec![
            (3, "yaml fragment".to_string(), "spec:\n  x: 1".to_string()),
            (8, "sh".to_string(), "```yaml".to_string()),
        ]
    );
}

/// The GitHub anchor of a heading: lower case, punctuation other than `-` and `_` removed, spaces
/// turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings (outside fenced blocks); a repeated heading gets
/// `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_fence: Option<String> = None;
    for line in text.lines() {
        match (&in_fence, fence(line)) {
            (None, Some((marker, _))) => in_fence = Some(marker),
            (Some(open), Some((closing, info))) if info.is_empty() && closing.starts_with(open.as_str()) => {
                in_fence = None
            }
            (None, None) => {
                let hashes = line.chars().take_while(|c| *c == '#').count();
                if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
                    let base = slug(&line[hashes..]);
                    let mut anchor = base.clone();
                    let mut n = 0;
                    while out.contains(&anchor) {
                        n += 1;
                        anchor = format!("{base}-{n}");
                    }
                    out.insert(anchor);
                }
            }
            _ => {}
        }
    }
    out
}

/// The targets of the inline links of a Markdown text, outside fenced blocks and code spans, with
/// their line numbers.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_fence: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        match (&in_fence, fence(line)) {
            (None, Some((marker, _))) => {
                in_fence = Some(marker);
                continue;
            }
            (Some(open), Some((closing, info))) if info.is_empty() && closing.starts_with(open.as_str()) => {
                in_fence = None;
                continue;
            }
            (Some(_), _) => continue,
            (None, None) => {}
        }
        // `](` inside a code span is code, not a link; a link's text may hold a code span.
        let mut in_code = false;
        let bytes = line.as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            match bytes[j] {
                b'`' => in_code = !in_code,
                b']' if !in_code && bytes.get(j + 1) == Some(&b'(') => {
                    if let Some(end) = line[j + 2..].find(')') {
                        out.push((i + 1, line[j + 2..j + 2 + end].to_string()));
                        j += 2 + end;
                    }
                }
                _ => {}
            }
            j += 1;
        }
    }
    out
}

/// What is wrong with the relative links of one Markdown file (`file` relative to the root).
fn link_errors(root: &Path, file: &Path, text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let dir = file.parent().unwrap_or(Path::new(""));
    for (line, target) in link_targets(text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let at = format!("{}:{line}: ({target})", file.display());
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        let full = root.join(&resolved);
        if !path.is_empty() && !full.exists() {
            errors.push(format!("{at}: {} does not exist", resolved.display()));
            continue;
        }
        if let Some(anchor) = anchor {
            if resolved.extension().is_none_or(|e| e != "md") {
                errors.push(format!("{at}: an anchor into a file that is not Markdown"));
                continue;
            }
            let target_text = if path.is_empty() {
                text.to_string()
            } else {
                std::fs::read_to_string(&full).unwrap_or_default()
            };
            if !anchors(&target_text).contains(anchor) {
                errors.push(format!("{at}: {} has no heading #{anchor}", resolved.display()));
            }
        }
    }
    errors
}

#[test]
fn every_relative_link_of_the_manual_resolves() {
    let root = workspace_root();
    let mut errors = Vec::new();
    let mut links = 0;
    for file in manual_files() {
        let text = read(&file);
        links += link_targets(&text).len();
        errors.extend(link_errors(&root, &file, &text));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(links > 20, "only {links} links found: is the link parser broken?");
}

#[test]
fn a_broken_link_or_anchor_fails() {
    let root = workspace_root();
    let text = "# Title\n\n[ok](#title) [ok](../README.md) [code `x`](../config/) `[not](a link)`\n\
                [gone](nowhere.md) [bad anchor](#no-such-heading) [bad](../README.md#no-such-heading)\n\
                [web](https://example.com/x)\n\n```sh\n[fenced](away.md)\n```\n";
    let errors = link_errors(&root, Path::new("docs/inline.md"), text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].contains("docs/nowhere.md does not exist"),
        "{errors:#?}"
    );
    assert!(errors[1].contains("#no-such-heading"), "{errors:#?}");
    assert!(errors[2].contains("README.md has no heading"), "{errors:#?}");
}

#[test]
fn slugs_follow_github() {
    assert_eq!(
        slug(" Running without a cluster: the `dir:` source"),
        "running-without-a-cluster-the-dir-source"
    );
    assert_eq!(slug(" BFD: fast failure detection"), "bfd-fast-failure-detection");
    assert_eq!(
        slug(" The speaker: layer2 (and vip)"),
        "the-speaker-layer2-and-vip"
    );
    let text = "# A\n## A\n```\n# not a heading\n```\n#nospace\n";
    let found: Vec<String> = anchors(text).into_iter().collect();
    assert_eq!(found, vec!["a".to_string(), "a-1".to_string()]);
}
