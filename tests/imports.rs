//! The root crate's import structure, read from its `use` lines and paths:
//!
//! * the top-level modules (`cli`, `commands`, `engine`, `plan`, `report`, `vault`,
//!   …) depend on each other without a circle: the engine's vocabulary does not
//!   depend on a renderer, the plan not on the engine, the CLI's definitions not on
//!   the commands;
//! * inside each folder, the files depend on each other without a circle, and no
//!   file reaches up into its folder's `mod.rs` (a `mod.rs` declares and re-exports;
//!   what a phase needs it is handed, or takes from the file that defines it).
//!
//! A re-export (`pub use x::Y;`) in a `mod.rs` is the folder's face, not a
//! dependency, and is not counted. `VSYNC_TEST_IMPORTS=print` prints every edge.
//!
//! Why a test and not a tool: it runs in `cargo test`, needs nothing installed, and
//! fails with the edges that close a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate root, e.g. `["engine", "activate"]`.
type ModPath = Vec<String>;

struct Crate {
    /// Module path → file.
    files: BTreeMap<ModPath, PathBuf>,
}

impl Crate {
    fn read(src: &Path) -> Crate {
        let mut files = BTreeMap::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                if p.extension().and_then(|x| x.to_str()) != Some("rs") {
                    continue;
                }
                let rel = p.strip_prefix(src).unwrap();
                let mut parts: Vec<String> = rel
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect();
                let last = parts.pop().unwrap();
                match last.as_str() {
                    "lib.rs" | "main.rs" if parts.is_empty() => {
                        parts.push(format!("<{}>", last.trim_end_matches(".rs")))
                    }
                    "mod.rs" => {}
                    other => parts.push(other.trim_end_matches(".rs").to_owned()),
                }
                files.insert(parts, p);
            }
        }
        Crate { files }
    }

    /// The file a path resolves to: its longest prefix that is a module.
    fn resolve(&self, path: &[String]) -> Option<ModPath> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| self.files.contains_key(m))
    }

    fn children(&self, m: &ModPath) -> BTreeSet<String> {
        self.files
            .keys()
            .filter(|k| k.len() == m.len() + 1 && k[..m.len()] == m[..])
            .map(|k| k[m.len()].clone())
            .collect()
    }
}

/// The source without comments, string and char literals.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r'
            && (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // Raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(b[i] as char);
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && (b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\')) {
            // A char literal ('x' or '\n'); lifetimes are left alone.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The source without `#[cfg(test)]` items: a file's unit tests are not part of
/// the structure (and their `super::` is the file itself).
fn without_tests(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // The item runs to its `;` or to the brace that closes its first `{`.
        let semi = after.find(';');
        let open = after.find('{');
        let end = match (semi, open) {
            (Some(s), Some(o)) if s < o => s + 1,
            (_, Some(o)) => {
                let mut depth = 0;
                let mut end = after.len();
                for (i, c) in after[o..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = o + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (Some(s), None) => s + 1,
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Expands one `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    // Split a top-level list on commas.
    let mut depth = 0;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..]);
    if parts.len() > 1 {
        for p in parts {
            expand(prefix, p, out);
        }
        return;
    }
    let t = parts[0].trim();
    if let Some(open) = t.find('{') {
        let head = t[..open].trim_end_matches("::");
        let inner = &t[open + 1..t.rfind('}').unwrap_or(t.len())];
        let mut p = prefix.to_vec();
        p.extend(
            head.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        expand(&p, inner, out);
    } else {
        let t = t.split(" as ").next().unwrap().trim();
        let mut p = prefix.to_vec();
        p.extend(
            t.split("::")
                .filter(|s| !s.is_empty())
                .map(|s| s.trim().to_owned()),
        );
        out.push(p);
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path a file names: `use` trees, and `crate::`/`super::`/`child::` paths
/// in code. `pub use` lines of a `mod.rs` are left out (the face).
fn paths_of(text: &str, is_mod_rs: bool, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = String::new();
    // `use` statements, up to their `;`.
    let mut i = 0;
    let t = text;
    while let Some(pos) = t[i..].find("use ") {
        let at = i + pos;
        let before = t[..at].chars().next_back();
        if before.is_some_and(is_ident) {
            rest.push_str(&t[i..at + 4]);
            i = at + 4;
            continue;
        }
        let line_start = t[..at].rfind('\n').map(|n| n + 1).unwrap_or(0);
        let lead = t[line_start..at].trim();
        let is_pub = lead.starts_with("pub");
        let end = t[at..].find(';').map(|e| at + e).unwrap_or(t.len());
        rest.push_str(&t[i..line_start]);
        if !(is_pub && is_mod_rs) {
            expand(&[], &t[at + 4..end], &mut out);
        }
        i = end + 1;
        if i > t.len() {
            break;
        }
    }
    if i < t.len() {
        rest.push_str(&t[i..]);
    }
    // Paths in code.
    let chars: Vec<char> = rest.chars().collect();
    let mut k = 0;
    while k < chars.len() {
        if is_ident(chars[k]) && (k == 0 || !(is_ident(chars[k - 1]) || chars[k - 1] == ':')) {
            let mut j = k;
            let mut segs = Vec::new();
            loop {
                let s = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                segs.push(chars[s..j].iter().collect::<String>());
                if j + 2 < chars.len()
                    && chars[j] == ':'
                    && chars[j + 1] == ':'
                    && is_ident(chars[j + 2])
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1
                && (segs[0] == "crate" || segs[0] == "super" || children.contains(&segs[0]))
            {
                out.push(segs);
            }
            k = j.max(k + 1);
        } else {
            k += 1;
        }
    }
    out
}

struct Graph {
    edges: BTreeMap<ModPath, BTreeMap<ModPath, BTreeSet<String>>>,
}

fn graph(krate: &Crate) -> Graph {
    let mut edges: BTreeMap<ModPath, BTreeMap<ModPath, BTreeSet<String>>> = BTreeMap::new();
    for (m, file) in &krate.files {
        let text = without_tests(&strip(&std::fs::read_to_string(file).unwrap()));
        let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
        // The module a file's relative paths start from.
        let here: ModPath = if m.first().is_some_and(|s| s.starts_with('<')) {
            vec![]
        } else {
            m.clone()
        };
        let children = krate.children(&here);
        for p in paths_of(&text, is_mod_rs, &children) {
            let mut abs: Vec<String> = Vec::new();
            let mut segs = p.as_slice();
            match segs.first().map(String::as_str) {
                Some("crate") => segs = &segs[1..],
                Some("super") => {
                    abs = here.clone();
                    while segs.first().map(String::as_str) == Some("super") {
                        abs.pop();
                        segs = &segs[1..];
                    }
                }
                Some("self") => {
                    abs = here.clone();
                    segs = &segs[1..];
                }
                Some(first) if children.contains(first) => abs = here.clone(),
                _ => continue,
            }
            abs.extend(segs.iter().cloned());
            let Some(target) = krate.resolve(&abs) else {
                continue;
            };
            if &target == m || target.is_empty() {
                continue;
            }
            let name = abs.last().cloned().unwrap_or_default();
            edges
                .entry(m.clone())
                .or_default()
                .entry(target)
                .or_default()
                .insert(name);
        }
    }
    Graph { edges }
}

fn show(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Strongly connected components with more than one node (Tarjan).
fn circles<N: Ord + Clone>(nodes: &BTreeSet<N>, adj: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    struct St<N> {
        index: BTreeMap<N, usize>,
        low: BTreeMap<N, usize>,
        on: BTreeSet<N>,
        stack: Vec<N>,
        next: usize,
        out: Vec<Vec<N>>,
    }
    fn visit<N: Ord + Clone>(v: &N, adj: &BTreeMap<N, BTreeSet<N>>, st: &mut St<N>) {
        st.index.insert(v.clone(), st.next);
        st.low.insert(v.clone(), st.next);
        st.next += 1;
        st.stack.push(v.clone());
        st.on.insert(v.clone());
        for w in adj.get(v).into_iter().flatten() {
            if !st.index.contains_key(w) {
                visit(w, adj, st);
                let lw = st.low[w];
                let lv = st.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if st.on.contains(w) {
                let iw = st.index[w];
                let lv = st.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = st.stack.pop().unwrap();
                st.on.remove(&w);
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                st.out.push(comp);
            }
        }
    }
    let mut st = St {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: vec![],
        next: 0,
        out: vec![],
    };
    for n in nodes {
        if !st.index.contains_key(n) {
            visit(n, adj, &mut st);
        }
    }
    st.out
}

fn root_graph() -> (Crate, Graph) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let krate = Crate::read(&src);
    let g = graph(&krate);
    if std::env::var("VSYNC_TEST_IMPORTS").as_deref() == Ok("print") {
        for (from, tos) in &g.edges {
            for (to, names) in tos {
                eprintln!("{} -> {}: {names:?}", show(from), show(to));
            }
        }
    }
    (krate, g)
}

#[test]
fn top_level_modules_depend_on_each_other_without_a_circle() {
    let (krate, g) = root_graph();
    let top = |m: &ModPath| m.first().cloned().unwrap_or_default();
    let nodes: BTreeSet<String> = krate.files.keys().map(top).collect();
    let mut adj: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut why: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (from, tos) in &g.edges {
        for (to, names) in tos {
            let (a, b) = (top(from), top(to));
            if a != b && !b.is_empty() {
                adj.entry(a.clone()).or_default().insert(b.clone());
                why.entry((a.clone(), b.clone())).or_default().push(format!(
                    "{} -> {}: {}",
                    show(from),
                    show(to),
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    let found = circles(&nodes, &adj);
    let mut report = Vec::new();
    for c in &found {
        let set: BTreeSet<&String> = c.iter().collect();
        report.push(format!("circle: {c:?}"));
        for ((a, b), lines) in &why {
            if set.contains(a) && set.contains(b) {
                report.extend(lines.iter().map(|l| format!("  {l}")));
            }
        }
    }
    assert!(found.is_empty(), "{}", report.join("\n"));
}

#[test]
fn files_in_a_folder_never_reach_up_and_never_circle() {
    let (krate, g) = root_graph();
    let mut problems = Vec::new();
    // No file imports its own folder's mod.rs (or any ancestor's).
    for (from, tos) in &g.edges {
        for (to, names) in tos {
            let ancestor = to.len() < from.len()
                && from[..to.len()] == to[..]
                && krate.files[to].file_name().is_some_and(|n| n == "mod.rs");
            if ancestor {
                problems.push(format!(
                    "{} reaches up into {} ({}): take it from the file that defines it, or be handed it",
                    show(from),
                    show(to),
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    // Within each folder, the files form no circle.
    let folders: BTreeSet<ModPath> = krate
        .files
        .keys()
        .filter(|m| m.len() >= 2)
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    for folder in folders {
        let inside = |m: &ModPath| m.len() > folder.len() && m[..folder.len()] == folder[..];
        // Each file (or sub-folder) directly below `folder` is a node.
        let node = |m: &ModPath| m[..=folder.len()].to_vec();
        let nodes: BTreeSet<ModPath> = krate.files.keys().filter(|m| inside(m)).map(node).collect();
        let mut adj: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        for (from, tos) in &g.edges {
            for to in tos.keys() {
                if inside(from) && inside(to) && node(from) != node(to) {
                    adj.entry(node(from)).or_default().insert(node(to));
                }
            }
        }
        for c in circles(&nodes, &adj) {
            let names: Vec<String> = c.iter().map(show).collect();
            problems.push(format!("circle in {}: {}", show(&folder), names.join(", ")));
            for (from, tos) in &g.edges {
                for (to, n) in tos {
                    if inside(from)
                        && inside(to)
                        && c.contains(&node(from))
                        && c.contains(&node(to))
                        && node(from) != node(to)
                    {
                        problems.push(format!("  {} -> {}: {n:?}", show(from), show(to)));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker itself: a circle and a reach-up it must see.
#[test]
fn the_checker_sees_a_circle_and_a_reach_up() {
    let text = strip(
        "use super::{a, b::{C, D}};\n// use crate::gone::X;\nfn f() { crate::plan::load(\"crate::fake::Y\"); }\n",
    );
    let children = BTreeSet::new();
    let paths = paths_of(&text, false, &children);
    assert!(paths.contains(&vec!["super".to_owned(), "a".to_owned()]));
    assert!(paths.contains(&vec!["super".to_owned(), "b".to_owned(), "D".to_owned()]));
    assert!(paths.contains(&vec![
        "crate".to_owned(),
        "plan".to_owned(),
        "load".to_owned()
    ]));
    assert!(!paths
        .iter()
        .any(|p| p.contains(&"gone".to_owned()) || p.contains(&"fake".to_owned())));
    let nodes: BTreeSet<u8> = [1, 2, 3].into();
    let adj: BTreeMap<u8, BTreeSet<u8>> =
        [(1, [2].into()), (2, [1].into()), (3, [1].into())].into();
    assert_eq!(circles(&nodes, &adj).len(), 1);
}
