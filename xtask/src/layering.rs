//! The hypervisor's module layering, checked from its source: `arch/` is a leaf
//! (it imports no VM, console or scheduler code) and no two modules of
//! `hypervisor/src` import each other, directly or through others. Run as a
//! host unit test of xtask, so `cargo xtask test` fails when a change breaks it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`vm::runtime::vcpu`) of every `.rs` file under `root`, with its source.
fn modules(root: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable source tree") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(root).expect("under root").with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                parts.pop();
            }
            let source = std::fs::read_to_string(&path).expect("readable source file");
            found.insert(parts.join("::"), source);
        }
    }
    found
}

/// The source without its `#[cfg(test)] mod tests` block and comments: test
/// code may reach anywhere.
fn production_code(source: &str) -> String {
    let cut = source.find("#[cfg(test)]\nmod tests").unwrap_or(source.len());
    source[..cut].lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The modules `module`'s code names through `crate::` or `super::` paths
/// (each resolved to the longest known module prefix), parents and children
/// of `module` excluded.
fn imports(module: &str, source: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let code = production_code(source);
    let mut targets = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let Some(start) = ["crate::", "super::"].iter().filter_map(|p| rest.find(p)).min() else { break };
        let begin = at + start;
        let end = code[begin..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(code.len(), |n| begin + n);
        at = end.max(begin + 1);
        if begin > 0 && (bytes[begin - 1].is_ascii_alphanumeric() || bytes[begin - 1] == b'_') {
            continue;
        }
        let path: Vec<&str> = code[begin..end].split("::").filter(|p| !p.is_empty()).collect();
        let mut base: Vec<&str> = Vec::new();
        let mut rest = &path[..];
        if rest.first() == Some(&"crate") {
            rest = &rest[1..];
        } else {
            base = module.split("::").collect();
            base.pop();
            while rest.first() == Some(&"super") {
                rest = &rest[1..];
                if rest.first() == Some(&"super") {
                    base.pop();
                }
            }
        }
        let mut braces_target: Vec<String> = Vec::new();
        // `use crate::a::{b, c::d}`: each item in the braces is a path too.
        if code[end..].starts_with('{')
            && let Some(close) = code[end..].find('}')
        {
            for item in code[end + 1..end + close].split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim().to_string();
                if !first.is_empty() {
                    braces_target.push(first);
                }
            }
        }
        let mut candidates = vec![rest.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
        for item in braces_target {
            let mut with = candidates[0].clone();
            with.push(item);
            candidates.push(with);
        }
        for candidate in candidates {
            for len in (1..=candidate.len()).rev() {
                let name: Vec<&str> = base.iter().copied().chain(candidate[..len].iter().map(String::as_str)).collect();
                let name = name.join("::");
                if known.contains(&name) {
                    let related = name == module
                        || module.starts_with(&format!("{name}::"))
                        || name.starts_with(&format!("{module}::"));
                    if !related {
                        targets.insert(name);
                    }
                    break;
                }
            }
        }
    }
    targets
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(state: &mut State<'g>, v: &'g str) {
        let n = state.index.len();
        state.index.insert(v, n);
        state.low.insert(v, n);
        state.stack.push(v);
        state.on_stack.insert(v);
        for w in &state.graph[v] {
            let w = w.as_str();
            if !state.index.contains_key(w) {
                visit(state, w);
                let low = state.low[v].min(state.low[w]);
                state.low.insert(v, low);
            } else if state.on_stack.contains(w) {
                let low = state.low[v].min(state.index[w]);
                state.low.insert(v, low);
            }
        }
        if state.low[v] == state.index[v] {
            let mut component = Vec::new();
            while let Some(w) = state.stack.pop() {
                state.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = crate::build::workspace_root().join("hypervisor/src");
    let modules = modules(&root);
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules.iter().map(|(name, source)| (name.clone(), imports(name, source, &known))).collect()
}

mod tests {
    use super::*;

    #[test]
    fn arch_is_a_leaf() {
        let graph = graph();
        let upward: Vec<String> = graph
            .iter()
            .filter(|(module, _)| module.starts_with("arch"))
            .flat_map(|(module, targets)| {
                targets
                    .iter()
                    .filter(|t| t.starts_with("vm") || t.starts_with("console") || t.starts_with("boot"))
                    .map(move |t| format!("{module} -> {t}"))
            })
            .collect();
        assert!(upward.is_empty(), "arch/ imports upward: {upward:?}");
    }

    #[test]
    fn no_module_cycles() {
        let found = cycles(&graph());
        assert!(found.is_empty(), "import cycles in hypervisor/src: {found:?}");
    }

    #[test]
    fn the_checker_sees_imports_and_cycles() {
        let known: BTreeSet<String> = ["a", "b", "c", "vm", "vm::x", "vm::y"].iter().map(|s| s.to_string()).collect();
        let found = imports("vm::x", "use super::y::Thing;\nuse crate::{a, b::Z};\n", &known);
        assert_eq!(found, ["a", "b", "vm::y"].iter().map(|s| s.to_string()).collect());
        let graph: BTreeMap<String, BTreeSet<String>> = [
            ("a".to_string(), ["b".to_string()].into()),
            ("b".to_string(), ["a".to_string()].into()),
            ("c".to_string(), BTreeSet::new()),
        ]
        .into();
        assert_eq!(cycles(&graph), [["a".to_string(), "b".to_string()]]);
    }
}
