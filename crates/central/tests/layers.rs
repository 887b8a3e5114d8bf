//! The central's layers, as `src/lib.rs` states them: every `crate::` path in every file under
//! `src/` points to the file's own layer or one below it. A newcomer adding a module puts it
//! in a folder; this test says where that folder sits, and fails on the first upward arrow.

use std::path::{Path, PathBuf};

/// Top to bottom; a file may import from its own layer and the layers after it.
const LAYERS: &[(&str, &[&str])] = &[
    // The binary: calls `cli::main` and nothing else.
    ("bin", &["main"]),
    ("cli", &["cli"]),
    // `http::app::App` (the handlers' shared state) is part of http.
    ("http", &["http"]),
    ("domain", &["fleet", "commerce"]),
    ("outside", &["db", "events", "ka"]),
    ("base", &["config", "times", "metrics", "logging"]),
];

/// The layer (index into LAYERS) of a top-level module name.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// The code without `//` comments (doc links are prose, not imports). Naive about `//` inside
/// string literals, which only drops the rest of such a line.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules that `crate::` paths in `code` name, with the line of each:
/// `crate::fleet::store::Store` → fleet; `use crate::{config::Config, ka}` → config, ka (a
/// group may span lines).
fn crate_refs(code: &str) -> Vec<(usize, String)> {
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        // `$crate::` or `other_crate::` are not this crate's paths.
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
        {
            continue;
        }
        let after = &code[from..];
        if let Some(group) = after.strip_prefix('{') {
            // The group's top-level items, up to its closing brace.
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        out.push((line_of(from + 1 + j), ident_at(&group[j..]).to_string()));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(after);
            if !name.is_empty() {
                out.push((line_of(at), name.to_string()));
            }
        }
    }
    out
}

/// Every upward import in one file, as sentences naming the file, line and module.
fn violations(rel: &str, text: &str) -> Result<Vec<String>, String> {
    let top = rel.split('/').next().unwrap_or(rel).trim_end_matches(".rs");
    let own = layer_of(top).ok_or_else(|| {
        format!("src/{rel} is in no layer: put it in a layer's folder, or add `{top}` to LAYERS in tests/layers.rs")
    })?;
    let mut found = Vec::new();
    for (line, module) in crate_refs(&strip_comments(text)) {
        let Some(target) = layer_of(&module) else {
            found.push(format!(
                "src/{rel}:{line} imports crate::{module}, which is in no layer"
            ));
            continue;
        };
        if target < own {
            found.push(format!(
                "src/{rel}:{line} imports crate::{module} ({} layer) from the {} layer: imports go only downwards",
                LAYERS[target].0, LAYERS[own].0
            ));
        }
    }
    Ok(found)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn imports_go_only_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(
        files.len() > 30,
        "only {} .rs files under {}",
        files.len(),
        src.display()
    );
    let mut problems = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        // lib.rs only declares the layers' modules.
        if rel == "lib.rs" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        match violations(&rel, &text) {
            Ok(v) => problems.extend(v),
            Err(e) => problems.push(e),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_top_level_module_is_in_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line.trim().strip_prefix("pub mod ").and_then(|l| l.strip_suffix(';')) {
            assert!(
                layer_of(name).is_some(),
                "lib.rs declares `{name}`, which tests/layers.rs puts in no layer"
            );
        }
    }
}

#[test]
fn an_upward_import_is_named() {
    let store = "use crate::db::Db;\nuse crate::{\n    config::Config,\n    http::app::App,\n};\n";
    assert_eq!(
        violations("fleet/store.rs", store).unwrap(),
        ["src/fleet/store.rs:4 imports crate::http (http layer) from the domain layer: imports go only downwards"]
    );
    // Downwards, sideways within a layer, comments and other crates' paths are fine.
    let ok =
        "use crate::fleet::store::Store;\nuse crate::commerce::orders;\n// crate::cli\nlet x = $crate::cli::f();\n";
    assert_eq!(violations("commerce/orders.rs", ok).unwrap(), Vec::<String>::new());
    let inline = "let o: Option<crate::commerce::orders::Order> = None;";
    assert_eq!(violations("config.rs", inline).unwrap().len(), 1);
    assert!(violations("new_thing.rs", "")
        .unwrap_err()
        .contains("src/new_thing.rs is in no layer"));
}
