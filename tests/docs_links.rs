//! Every relative link in README.md, ARCHITECTURE.md and docs/**/*.md resolves: the file or
//! directory exists inside the repository, and a `#anchor` names a heading of the target
//! (GitHub's anchor rules). Web links are not fetched. A user of the repository has nothing
//! outside it, so a link that leaves the repository (`../shared/…`) fails too.
// The docs are the same on every platform; their links are checked on Linux.
#![cfg(unix)]

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// A link as written: the page it is in, its 1-based line, its target.
#[derive(Debug)]
struct Link {
    line: usize,
    target: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, ARCHITECTURE.md and every .md under docs/, relative to the repository.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    let mut dirs = vec![PathBuf::from("docs")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let rel = dir.join(e.file_name());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(rel);
            } else if rel.extension().is_some_and(|x| x == "md") {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// Removes inline code spans, so `[a](b)` inside backticks is not a link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The links of a Markdown text: inline `[text](target)` / `![alt](target)` and reference
/// definitions `[name]: target`, outside fenced code blocks and code spans.
fn links(text: &str) -> Vec<Link> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, raw) in text.lines().enumerate() {
        if raw.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let line = without_code_spans(raw);
        let t = line.trim_start();
        if t.starts_with('[') {
            if let Some(end) = t.find("]:") {
                if !t[..end].contains('(') {
                    let target = t[end + 2..].split_whitespace().next().unwrap_or("");
                    out.push(Link {
                        line: i + 1,
                        target: target.to_string(),
                    });
                    continue;
                }
            }
        }
        let mut rest = line.as_str();
        while let Some(pos) = rest.find("](") {
            let after = &rest[pos + 2..];
            let Some(close) = after.find(')') else { break };
            // `[x](target "title")`: the target is the first word.
            let target = after[..close].split_whitespace().next().unwrap_or("");
            out.push(Link {
                line: i + 1,
                target: target.to_string(),
            });
            rest = &after[close..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lowercase; letters, digits, `-` and `_` kept; spaces become
/// `-`; everything else dropped (inline code keeps its text).
fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The anchors of a Markdown text's headings; a repeated heading gets `-1`, `-2`, … as on GitHub.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let base = slug(title.trim());
        let n = seen.entry(base.clone()).or_insert(0);
        out.push(if *n == 0 { base.clone() } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

/// `a/b/../c` → `a/c`, without touching the file system; `None` when it climbs above the root.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Why the link `target` in `page` does not resolve, or `None` when it does.
fn broken(root: &Path, page: &Path, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("the link is empty".into());
    }
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let rel = if path.is_empty() {
        page.to_path_buf()
    } else {
        let joined = page.parent().unwrap_or(Path::new("")).join(path);
        match normalize(&joined) {
            Some(p) => p,
            None => return Some(format!("{path} points outside the repository")),
        }
    };
    let full = root.join(&rel);
    let rel_str = rel.to_string_lossy().replace('\\', "/");
    if !full.exists() {
        return Some(format!("{rel_str} does not exist"));
    }
    let anchor = anchor?;
    if full.is_dir() || full.extension().is_none_or(|x| x != "md") {
        return Some(format!("#{anchor} on {rel_str}, which is not a Markdown page"));
    }
    let text = std::fs::read_to_string(&full).unwrap_or_default();
    if anchors(&text).iter().any(|a| a == anchor) {
        None
    } else {
        Some(format!("{rel_str} has no heading with the anchor #{anchor}"))
    }
}

/// Every broken link of the pages under `root`, one sentence each.
fn broken_links(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for page in pages(root) {
        let text = match std::fs::read_to_string(root.join(&page)) {
            Ok(t) => t,
            Err(e) => {
                out.push(format!("{}: cannot be read: {e}", page.display()));
                continue;
            }
        };
        for link in links(&text) {
            if let Some(why) = broken(root, &page, &link.target) {
                out.push(format!(
                    "{}:{}: the link ({}) is broken: {why}",
                    page.display(),
                    link.line,
                    link.target
                ));
            }
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = repo();
    assert!(root.join("docs").is_dir(), "no docs/ folder in {}", root.display());
    let broken = broken_links(&root);
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_check_finds_a_missing_page_a_missing_anchor_and_a_link_out_of_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(
        root.join("README.md"),
        "# Title\n\nSee [agent](docs/agent.md#set-up-the-token) and [gone](docs/gone.md).\n\
         [out](../shared/spec/agent-contract.md), [web](https://example.com/x),\n\
         [self](#title), `[code](docs/none.md)`\n\n```\n[fenced](docs/none.md)\n```\n",
    )
    .unwrap();
    std::fs::write(root.join("ARCHITECTURE.md"), "# A\n\n[ok](docs/agent.md#install)\n").unwrap();
    std::fs::write(
        root.join("docs/agent.md"),
        "# Agent\n\n## Set up `the` token!\n\n## Install\n\n## Install\n\n[twice](#install-1) [nope](#install-2)\n",
    )
    .unwrap();
    let found = broken_links(root);
    let expect = [
        "README.md:3: the link (docs/gone.md) is broken: docs/gone.md does not exist",
        "README.md:4: the link (../shared/spec/agent-contract.md) is broken: ../shared/spec/agent-contract.md points outside the repository",
        "docs/agent.md:9: the link (#install-2) is broken: docs/agent.md has no heading with the anchor #install-2",
    ];
    assert_eq!(found, expect, "found:\n{}", found.join("\n"));
}

#[test]
fn anchors_follow_githubs_rules() {
    assert_eq!(
        slug("Configuration reference (`agent.ini`)"),
        "configuration-reference-agentini"
    );
    assert_eq!(slug("`status` and `status --json`"), "status-and-status---json");
    assert_eq!(slug("Orders or jobs?"), "orders-or-jobs");
    assert_eq!(
        slug("panel.ini is shared with writers that take no lock"),
        "panelini-is-shared-with-writers-that-take-no-lock"
    );
}
