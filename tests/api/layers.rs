//! The source tree keeps its shape: files import each other without cycles,
//! the lower layers know no domain, one store owns the `deliveries` table,
//! and no file grows past what a reader takes in at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Folders and files every domain may use, which import no domain themselves.
const LOWER: &[&str] = &[
    "config",
    "db",
    "storage",
    "mail",
    "redis",
    "error",
    "telemetry",
    "pool",
    "pagination",
    "validate",
    "http",
    "ids",
    "locale",
];

/// The longest a source file under `src/` may be, in lines.
const MAX_LINES: usize = 450;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// The library's module path of a file (`src/realtime/hub/mod.rs` →
/// `realtime::hub`), or `None` for the binary's own files.
fn module_of(path: &Path) -> Option<Vec<String>> {
    let relative = path.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts == ["main"] || parts.first().is_some_and(|p| p == "tools") {
        return None;
    }
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    Some(parts)
}

/// The source without comments and string literals, which may mention paths.
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (c, escaped) {
                        ('\\', false) => escaped = true,
                        ('"', false) => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Expands a use tree (`crate::{a, b::{c, d}}`) into its paths.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let segments = |path: &str| -> Vec<String> {
        path.split("::")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    };
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![segments(tree.split(" as ").next().unwrap_or_default())];
    };
    let prefix = segments(&tree[..open]);
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&inner[start..]);
    out.into_iter()
        .filter(|part| !part.is_empty())
        .flat_map(expand)
        .map(|rest| prefix.iter().cloned().chain(rest).collect())
        .collect()
}

/// Every `crate::`/`super::`/`self::` path a file names, and every `use` of
/// one of its own submodules (`pub use inbox::…` in a `mod.rs`), made absolute.
fn paths_named(module: &[String], children: &BTreeSet<String>, code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let statement = &rest[at + 4..];
        let end = statement.find(';').unwrap_or(statement.len());
        let tree = statement[..end].trim();
        let first = tree.split("::").next().unwrap_or_default();
        if ["crate", "super", "self"].contains(&first) {
            found.extend(expand(tree));
        } else if children.contains(first) {
            found.extend(
                expand(tree)
                    .into_iter()
                    .map(|path| std::iter::once("self".to_owned()).chain(path).collect()),
            );
        }
        rest = &statement[end..];
    }
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("crate::"))
        .collect();
    found.extend(words.iter().map(|w| {
        w.split("::")
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    }));
    found
        .into_iter()
        .map(|path| {
            let mut base = module.to_vec();
            let mut parts = path.into_iter().peekable();
            match parts.peek().map(String::as_str) {
                Some("crate") => {
                    parts.next();
                    base.clear();
                }
                _ => {
                    while let Some(head) = parts.peek().map(String::as_str) {
                        match head {
                            "super" => {
                                base.pop();
                            }
                            "self" => {}
                            _ => break,
                        }
                        parts.next();
                    }
                }
            }
            base.extend(parts);
            base
        })
        .collect()
}

/// The file-to-file import graph of the library (module paths as keys).
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut paths = Vec::new();
    files(&src(), "rs", &mut paths);
    let modules: BTreeMap<Vec<String>, PathBuf> = paths
        .iter()
        .filter_map(|p| module_of(p).map(|m| (m, p.clone())))
        .collect();
    let resolve = |path: &[String]| {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|prefix| modules.contains_key(prefix))
    };
    modules
        .iter()
        .map(|(module, path)| {
            let source = std::fs::read_to_string(path).unwrap();
            // A file's unit tests sit in an inline module at its end; what
            // they import is not the file's own dependency.
            let code = code_only(source.split("#[cfg(test)]").next().unwrap_or_default());
            let children: BTreeSet<String> = modules
                .keys()
                .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
                .map(|m| m[module.len()].clone())
                .collect();
            let targets = paths_named(module, &children, &code)
                .iter()
                .filter_map(|p| resolve(p))
                .filter(|target| target != module && !target.is_empty())
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

fn name(module: &[String]) -> String {
    module.join("/")
}

/// A cycle through `start`, if the graph has one.
fn cycle_from(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    start: &Vec<String>,
) -> Option<Vec<String>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((node, trail)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some(trail.iter().map(|m| name(m)).collect());
            }
            if seen.insert(next.clone()) {
                let mut trail = trail.clone();
                trail.push(next.clone());
                stack.push((next.clone(), trail));
            }
        }
    }
    None
}

#[test]
fn files_of_the_library_import_each_other_without_cycles() {
    let graph = graph();
    assert!(graph.len() > 50, "the source tree was not found");
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|module| cycle_from(&graph, module))
        .map(|cycle| cycle.join(" → "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn lower_layers_import_no_domain() {
    let graph = graph();
    let mut offences = Vec::new();
    for (module, targets) in &graph {
        let Some(top) = module.first() else { continue };
        if !LOWER.contains(&top.as_str()) {
            continue;
        }
        for target in targets {
            if !LOWER.contains(&target[0].as_str()) {
                offences.push(format!("{} imports {}", name(module), name(target)));
            }
        }
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

#[test]
fn only_the_delivery_store_names_the_deliveries_table() {
    let mut paths = Vec::new();
    files(&src(), "rs", &mut paths);
    let root = src();
    let allowed = |path: &Path| {
        let relative = path.strip_prefix(&root).unwrap();
        relative.starts_with("deliveries/store")
            || relative.starts_with("tools/bench")
            || relative == Path::new("db/schema.rs")
    };
    let named = [
        "schema::deliveries",
        "deliveries::table",
        "FROM deliveries",
        "JOIN deliveries",
        "INTO deliveries",
        "UPDATE deliveries",
    ];
    let mut offences = Vec::new();
    for path in paths.iter().filter(|p| !allowed(p)) {
        let source = std::fs::read_to_string(path).unwrap();
        let schema_import = source.lines().any(|line| {
            line.trim_start().starts_with("use crate::db::schema::") && line.contains("deliveries")
        });
        if schema_import || named.iter().any(|n| source.contains(n)) {
            offences.push(path.strip_prefix(&root).unwrap().display().to_string());
        }
    }
    assert!(
        offences.is_empty(),
        "outside deliveries/store: {}",
        offences.join(", ")
    );
}

#[test]
fn no_source_file_is_longer_than_a_reader_takes_in() {
    let mut paths = Vec::new();
    files(&src(), "rs", &mut paths);
    files(&src(), "js", &mut paths);
    let long: Vec<String> = paths
        .iter()
        .filter(|p| !p.ends_with("db/schema.rs"))
        .filter_map(|p| {
            let lines = std::fs::read_to_string(p).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", p.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines: {}",
        long.join(", ")
    );
}
