//! The crate's layers as docs/ARCHITECTURE.md draws them: a module uses
//! only modules of lower layers (and its own), and no two modules import
//! each other, directly or round a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules, highest layer first.
const LAYERS: &[&str] = &[
    "ffi",
    "admin",
    "fuzzing",
    "module",
    "session",
    "token",
    "config",
    "mechanism",
    "object",
    "storage",
    "cache",
    "engine",
    "nss",
    "rv",
    "log",
];

/// Every source file as its module path ("mechanism::aes"), with its text
/// up to its unit tests.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut name = rel.to_str().unwrap().replace('/', "::");
            if let Some(parent) = name.strip_suffix("::mod") {
                name = parent.to_string();
            }
            if name == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap().to_string();
            out.insert(name, code);
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// The module paths a file names after `crate::` (or `super::`, relative
/// to its parent), each resolved to the longest one that is a file.
fn imports(name: &str, code: &str, known: &BTreeMap<String, String>) -> BTreeSet<String> {
    let parent = name.rsplit_once("::").map_or("", |(p, _)| p);
    let mut found = BTreeSet::new();
    for (marker, base) in [("crate::", ""), ("super::", parent)] {
        for (at, _) in code.match_indices(marker) {
            let rest = &code[at + marker.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == ':'
                })
                .collect();
            let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
            if !base.is_empty() {
                parts.insert(0, base);
            }
            while !parts.is_empty() {
                let candidate = parts.join("::");
                if known.contains_key(&candidate) {
                    if candidate != name {
                        found.insert(candidate);
                    }
                    break;
                }
                parts.pop();
            }
        }
    }
    found
}

fn layer(name: &str) -> usize {
    let top = name.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or_else(|| panic!("module {top} is in no layer: add it to LAYERS and the docs"))
}

#[test]
fn modules_use_only_lower_layers() {
    let known = modules();
    let mut wrong = Vec::new();
    for (name, code) in &known {
        for used in imports(name, code, &known) {
            let (from, to) = (layer(name), layer(&used));
            if from != to && to < from {
                wrong.push(format!("{name} -> {used}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports of a higher layer: {wrong:?}");
}

#[test]
fn no_module_imports_round_a_circle() {
    let known = modules();
    let edges: BTreeMap<&str, BTreeSet<String>> = known
        .iter()
        .map(|(name, code)| (name.as_str(), imports(name, code, &known)))
        .collect();
    // Depth-first search; a module met again while still open closes a circle.
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeMap<&str, BTreeSet<String>>,
        open: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = open.iter().position(|n| *n == node) {
            let mut circle: Vec<String> = open[at..].iter().map(|s| s.to_string()).collect();
            circle.push(node.to_string());
            return Some(circle);
        }
        if !done.insert(node) {
            return None;
        }
        open.push(node);
        for next in &edges[node] {
            if let Some(c) = visit(next, edges, open, done) {
                return Some(c);
            }
        }
        open.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        let circle = visit(node, &edges, &mut Vec::new(), &mut done);
        assert!(
            circle.is_none(),
            "import circle: {}",
            circle.unwrap().join(" -> ")
        );
    }
}
