//! The module graph of `src/`: no import cycle between files, and the formats
//! (`debian/`, `deb/`, `naming/`) never reach up into `build/`, `repo/` or the CLI.
//!
//! The graph is read from the tokens of every file (comments gone, strings single
//! tokens), so that it sees what a reader of `use` lines would miss: inline paths
//! (`crate::repo::targets::publish(..)`), paths inside macros, `super::`/`self::`, paths
//! through a module brought in by `use`, and a parent's paths into its child modules.
//! A file's own inline modules (`mod tests { .. }`) belong to the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// Files of the crate by module path (`["repo", "publish"]` → `src/repo/publish/mod.rs`).
type Modules = BTreeMap<Vec<String>, PathBuf>;

/// Every `.rs` file under `src` by its module path, from the directory layout (the
/// crate's `mod` declarations follow it; `#[path]` modules outside `src/` are skipped).
fn modules(src: &Path) -> Modules {
    let mut modules = Modules::new();
    for entry in walkdir::WalkDir::new(src).sort_by_file_name() {
        let entry = entry.expect("src is readable");
        let path = entry.path();
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).expect("under src");
        let mut segments: Vec<String> = relative
            .iter()
            .map(|segment| segment.to_string_lossy().into_owned())
            .collect();
        let file = segments.pop().expect("a file name");
        let stem = file.trim_end_matches(".rs");
        match stem {
            "lib" | "main" if segments.is_empty() => {}
            "mod" => {}
            _ => segments.push(stem.to_string()),
        }
        // main.rs is its own crate (the binary); it only uses the library's public API.
        if file == "main.rs" && segments.is_empty() {
            continue;
        }
        modules.insert(segments, path.to_path_buf());
    }
    modules
}

/// One path found in a file: its segments as written, and the module it was written in.
#[derive(Debug)]
struct Written {
    segments: Vec<String>,
    module: Vec<String>,
}

/// Collects every path of a token stream (`a::b::c`, `use a::{b, c::d}` expanded), with
/// the module it appears in; `mod name { .. }` blocks extend the module.
fn collect_paths(tokens: TokenStream, module: &[String], found: &mut Vec<Written>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut index = 0;
    while index < tokens.len() {
        if let Some(after) = after_test_only_item(&tokens, index) {
            index = after;
            continue;
        }
        match &tokens[index] {
            TokenTree::Ident(ident)
                if ident == "mod"
                    && matches!(tokens.get(index + 1), Some(TokenTree::Ident(_)))
                    && matches!(tokens.get(index + 2), Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace) =>
            {
                let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(body))) =
                    (tokens.get(index + 1), tokens.get(index + 2))
                else {
                    unreachable!("matched above");
                };
                let mut inner = module.to_vec();
                inner.push(name.to_string());
                collect_paths(body.stream(), &inner, found);
                index += 3;
            }
            TokenTree::Ident(ident) => {
                // A path starts at an identifier not preceded by `::`.
                let preceded = index >= 2
                    && matches!(&tokens[index - 1], TokenTree::Punct(p) if p.as_char() == ':')
                    && matches!(&tokens[index - 2], TokenTree::Punct(p) if p.as_char() == ':');
                if preceded {
                    index += 1;
                    continue;
                }
                let prefix = vec![ident.to_string()];
                index = path_from(&tokens, index + 1, prefix, module, found);
            }
            TokenTree::Group(group) => {
                collect_paths(group.stream(), module, found);
                index += 1;
            }
            _ => index += 1,
        }
    }
}

/// Whether `tokens[index..]` starts with `#[cfg(test)]`.
fn is_test_attribute(tokens: &[TokenTree], index: usize) -> bool {
    matches!(tokens.get(index), Some(TokenTree::Punct(p)) if p.as_char() == '#')
        && matches!(tokens.get(index + 1), Some(TokenTree::Group(group))
            if group.delimiter() == Delimiter::Bracket
                && group.stream().to_string().replace(' ', "") == "cfg(test)")
}

/// The index after an item that only tests compile (`#[cfg(test)] mod tests { .. }`,
/// `#[cfg(test)] mod fixture;`, `#[cfg(test)] use ..;`, `#[cfg(test)] fn ..`), when
/// `tokens[index..]` starts with one: test code is not part of the module graph.
fn after_test_only_item(tokens: &[TokenTree], index: usize) -> Option<usize> {
    if !is_test_attribute(tokens, index) {
        return None;
    }
    let mut index = index + 2;
    // Skip to the end of the item: a `;`, or the first brace group (a body).
    while let Some(token) = tokens.get(index) {
        index += 1;
        match token {
            TokenTree::Punct(p) if p.as_char() == ';' => break,
            TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => break,
            _ => {}
        }
    }
    Some(index)
}

/// The child modules a file declares under `#[cfg(test)]` (`mod tests;`, `mod fixture;`).
fn test_only_children(tokens: TokenStream) -> Vec<String> {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut children = Vec::new();
    for index in 0..tokens.len() {
        if !is_test_attribute(&tokens, index) {
            continue;
        }
        let mut next = index + 2;
        // Past other attributes and a visibility.
        while let Some(token) = tokens.get(next) {
            match token {
                TokenTree::Ident(ident) if ident == "mod" => {
                    if let Some(TokenTree::Ident(name)) = tokens.get(next + 1) {
                        children.push(name.to_string());
                    }
                    break;
                }
                TokenTree::Punct(p) if p.as_char() == ';' => break,
                TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => break,
                _ => next += 1,
            }
        }
    }
    children
}

/// Reads `::segment` repetitions after `prefix` from `tokens[index..]` (a brace group
/// after `::` is a `use` tree, expanded); records the path(s) and returns the index
/// after them.
fn path_from(
    tokens: &[TokenTree],
    mut index: usize,
    mut prefix: Vec<String>,
    module: &[String],
    found: &mut Vec<Written>,
) -> usize {
    loop {
        let colons = matches!(tokens.get(index), Some(TokenTree::Punct(p)) if p.as_char() == ':')
            && matches!(tokens.get(index + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':');
        if !colons {
            break;
        }
        match tokens.get(index + 2) {
            Some(TokenTree::Ident(next)) => {
                prefix.push(next.to_string());
                index += 3;
            }
            Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => {
                use_tree(group.stream(), &prefix, module, found);
                return index + 3;
            }
            _ => break,
        }
    }
    // A lone identifier is a local name, an item already imported by a `use` path, or
    // the `crate` of `pub(crate)`.
    if prefix.len() > 1 {
        found.push(Written {
            segments: prefix,
            module: module.to_vec(),
        });
    }
    index
}

/// Expands the inside of a `use prefix::{..}` group.
fn use_tree(tokens: TokenStream, prefix: &[String], module: &[String], found: &mut Vec<Written>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut index = 0;
    while index < tokens.len() {
        match &tokens[index] {
            TokenTree::Ident(ident) if ident == "self" => {
                found.push(Written {
                    segments: prefix.to_vec(),
                    module: module.to_vec(),
                });
                index += 1;
            }
            TokenTree::Ident(ident) => {
                let mut inner = prefix.to_vec();
                inner.push(ident.to_string());
                index = path_from(&tokens, index + 1, inner, module, found);
            }
            TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => {
                use_tree(group.stream(), prefix, module, found);
                index += 1;
            }
            _ => index += 1,
        }
    }
}

/// Makes a written path absolute (`crate::` first), or `None` for paths outside the
/// crate. `aliases` maps names a file brought in by `use` (or declared by `mod`) to the
/// absolute module path they stand for.
fn absolute(written: &Written, aliases: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    let mut segments = written.segments.iter();
    let first = segments.next()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => written.module.clone(),
        "super" => {
            let mut base = written.module.clone();
            base.pop()?;
            base
        }
        other => aliases.get(other)?.clone(),
    };
    let mut rest = segments.peekable();
    while rest.peek().is_some_and(|segment| *segment == "super") {
        rest.next();
        base.pop()?;
    }
    base.extend(rest.cloned());
    Some(base)
}

/// The file a module path lands in: the longest prefix that is a file of its own.
fn file_of<'a>(path: &[String], modules: &'a Modules) -> Option<&'a PathBuf> {
    (0..=path.len())
        .rev()
        .find_map(|length| modules.get(&path[..length]))
}

/// Edges file → file of the crate under `src` (a file's edges to itself left out).
fn graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut modules = modules(src);
    let tokenize = |file: &Path| {
        let text = std::fs::read_to_string(file).expect("source is readable");
        TokenStream::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: does not tokenize: {error:?}", file.display()))
    };
    // Files only tests compile leave the graph, with everything below them.
    let mut test_only: Vec<Vec<String>> = Vec::new();
    for (module, file) in &modules {
        for child in test_only_children(tokenize(file)) {
            let mut path = module.clone();
            path.push(child);
            test_only.push(path);
        }
    }
    modules.retain(|module, _| !test_only.iter().any(|test| module.starts_with(test)));
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (module, file) in &modules {
        let tokens = tokenize(file);
        let mut found = Vec::new();
        collect_paths(tokens, module, &mut found);
        // Names in scope that stand for modules of the crate: child modules, and what
        // `use` brought in (the last segment of an absolute path, or a rename).
        let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for child in modules.keys() {
            if child.len() == module.len() + 1 && child.starts_with(module) {
                let name = child.last().expect("a child has a name").clone();
                aliases.insert(name, child.clone());
            }
        }
        for written in &found {
            if let Some(path) = absolute(written, &BTreeMap::new()) {
                if let Some(last) = path.last() {
                    aliases.entry(last.clone()).or_insert(path);
                }
            }
        }
        let targets = edges.entry(file.clone()).or_default();
        for written in &found {
            let Some(path) = absolute(written, &aliases) else {
                continue;
            };
            if let Some(target) = file_of(&path, &modules) {
                if target != file {
                    targets.insert(target.clone());
                }
            }
        }
    }
    edges
}

/// The groups of files that reach each other (Tarjan's strongly connected components of
/// more than one file).
fn cycles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        next: usize,
        found: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a PathBuf) {
        state.index.insert(node, state.next);
        state.low.insert(node, state.next);
        state.next += 1;
        state.stack.push(node);
        state.on_stack.insert(node);
        let edges = state.edges;
        for target in edges.get(node).into_iter().flatten() {
            if !state.index.contains_key(target) {
                visit(state, target);
                let low = state.low[node].min(state.low[target]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(target) {
                let low = state.low[node].min(state.index[target]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.clone());
                if member == node {
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
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// What is wrong with the graph of the crate under `src`, one sentence each.
fn problems(src: &Path) -> Vec<String> {
    let edges = graph(src);
    let relative = |path: &Path| path.strip_prefix(src).unwrap_or(path).display().to_string();
    let mut problems = Vec::new();
    for component in cycles(&edges) {
        let members: BTreeSet<&PathBuf> = component.iter().collect();
        let inside: Vec<String> = component
            .iter()
            .flat_map(|from| {
                edges[from]
                    .iter()
                    .filter(|to| members.contains(to))
                    .map(move |to| format!("{} -> {}", relative(from), relative(to)))
            })
            .collect();
        problems.push(format!("import cycle: {}", inside.join(", ")));
    }
    let format_modules = ["debian", "deb", "naming"];
    let upper = |path: &Path| {
        let relative = path.strip_prefix(src).unwrap_or(path);
        relative.starts_with("build")
            || relative.starts_with("repo")
            || relative == Path::new("cli.rs")
    };
    for (from, targets) in &edges {
        let inner = from.strip_prefix(src).unwrap_or(from);
        if !format_modules.iter().any(|name| inner.starts_with(name)) {
            continue;
        }
        for to in targets.iter().filter(|to| upper(to)) {
            problems.push(format!(
                "a format module reaches up: {} -> {}",
                relative(from),
                relative(to)
            ));
        }
    }
    // The command line is converted at the boundary: only the entry point and the
    // repository's command dispatch read clap's types; the build and the repository's
    // core get options of their own (`build::request`, the commands' requests).
    let reads_the_command_line = |path: &Path| {
        let relative = path.strip_prefix(src).unwrap_or(path);
        relative == Path::new("lib.rs")
            || relative == Path::new("main.rs")
            || relative == Path::new("cli.rs")
            || relative == Path::new("repo/mod.rs")
            || relative.starts_with("repo/commands")
    };
    for (from, targets) in &edges {
        if reads_the_command_line(from) {
            continue;
        }
        for to in targets
            .iter()
            .filter(|to| to.strip_prefix(src).unwrap_or(to) == Path::new("cli.rs"))
        {
            problems.push(format!(
                "the command line's types reach past the boundary: {} -> {}",
                relative(from),
                relative(to)
            ));
        }
    }
    problems
}

#[test]
fn the_crate_has_no_import_cycle_and_formats_stay_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&src);
    // The graph is really read: the commands reach the core, the core the formats.
    let reaches = |from: &str, to: &str| edges[&src.join(from)].contains(&src.join(to));
    assert!(reaches("repo/commands/add.rs", "repo/state.rs"));
    assert!(reaches("repo/publish/mod.rs", "debian/release.rs"));
    assert!(reaches("lib.rs", "build/mod.rs"));
    let problems = problems(&src);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Writes a small crate under a temporary `src/` and returns what [`problems`] says.
fn problems_of(files: &[(&str, &str)]) -> Vec<String> {
    let directory = tempfile::tempdir().expect("temporary directory");
    let src = directory.path().join("src");
    for (path, text) in files {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("directories");
        std::fs::write(&path, text).expect("a source file");
    }
    problems(&src)
}

#[test]
fn a_planted_cycle_is_found_whatever_way_it_is_written() {
    let lib = "mod repo; mod debian; mod cli;\n";
    // Only `use` lines: found.
    let found = problems_of(&[
        ("lib.rs", lib),
        ("repo/mod.rs", "mod session; mod targets;\n"),
        ("repo/session.rs", "use crate::repo::targets::begin;\n"),
        ("repo/targets.rs", "use crate::repo::session::now;\n"),
    ]);
    assert_eq!(
        found,
        ["import cycle: repo/session.rs -> repo/targets.rs, repo/targets.rs -> repo/session.rs"]
    );
    // An inline path inside a macro on one side, `super::` on the other; a comment and a
    // string that name the other file do not count.
    let found = problems_of(&[
        ("lib.rs", lib),
        ("repo/mod.rs", "mod session; mod targets;\n"),
        (
            "repo/session.rs",
            "fn f() { assert!(crate::repo::targets::begin()); }\n",
        ),
        (
            "repo/targets.rs",
            "// crate::repo::session::now\nfn g() -> i64 { let _ = \"crate::repo::session\"; super::session::now() }\n",
        ),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    let found = problems_of(&[
        ("lib.rs", lib),
        ("repo/mod.rs", "mod session; mod targets;\n"),
        ("repo/session.rs", "fn f() { let _ = 1; }\n"),
        (
            "repo/targets.rs",
            "// crate::repo::session::now\nfn g() { let _ = \"crate::repo::session\"; }\n",
        ),
    ]);
    assert!(found.is_empty(), "{found:?}");
    // Through a module brought in by `use`, and a use tree with braces.
    let found = problems_of(&[
        ("lib.rs", lib),
        ("repo/mod.rs", "mod session; mod targets;\n"),
        (
            "repo/session.rs",
            "use crate::repo::{self, targets};\nfn f() { targets::lock::take(); }\n",
        ),
        ("repo/targets/mod.rs", "mod lock;\n"),
        (
            "repo/targets/lock.rs",
            "use crate::repo;\nfn g() { repo::session::now(); }\n",
        ),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("repo/targets/lock.rs -> repo/session.rs"),
        "{found:?}"
    );
    // Test code is not part of the graph: a test module's use of a fixture that uses
    // the file back is no cycle.
    let found = problems_of(&[
        ("lib.rs", lib),
        ("repo/mod.rs", "mod session;\n#[cfg(test)]\nmod fixture;\n"),
        (
            "repo/session.rs",
            "fn f() {}\n#[cfg(test)]\nmod tests { use crate::repo::fixture::make; }\n",
        ),
        ("repo/fixture.rs", "use crate::repo::session::f;\n"),
    ]);
    assert!(found.is_empty(), "{found:?}");
    // A format module reaching up.
    let found = problems_of(&[
        ("lib.rs", lib),
        ("debian/mod.rs", "fn f() { crate::cli::parse(); }\n"),
        ("cli.rs", "pub fn parse() {}\n"),
    ]);
    assert_eq!(
        found,
        [
            "a format module reaches up: debian/mod.rs -> cli.rs",
            "the command line's types reach past the boundary: debian/mod.rs -> cli.rs",
        ]
    );
    // The build taking clap's options instead of its own request.
    let found = problems_of(&[
        ("lib.rs", "mod build; mod cli;\n"),
        ("build/mod.rs", "use crate::cli::BuildOptions;\n"),
        ("cli.rs", "pub struct BuildOptions;\n"),
    ]);
    assert_eq!(
        found,
        ["the command line's types reach past the boundary: build/mod.rs -> cli.rs"]
    );
}
