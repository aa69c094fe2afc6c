//! Keeps `src/` layered: no two sibling modules import each other. A two-way import means neither
//! module can be read, tested or moved without the other; the fix is to move what both need down
//! a floor, into a module both import.
//!
//! Every file, and every inline `mod x { .. }`, is a module path (`controller::lease::apply`).
//! Each `use` and each inline `crate::`, `super::` or `self::` path resolves to the deepest module
//! it names. An edge A -> B counts between the two children of A's and B's lowest common ancestor,
//! so a folder module counts as one and parent/child edges are ignored. Test-only modules
//! (`#[cfg(test)] mod`) are left out: tests and their fixtures may reach anywhere. The source is
//! read as text, with comments, strings and char literals blanked first. `src/lib.rs`,
//! `src/main.rs` and each `src/bin/*` are separate crates.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// A module's path from its crate's root, the crate's name first.
type Module = Vec<String>;

const LIBRARY: &str = "entra_operator";

struct SourceFile {
    /// Relative to the package, for messages.
    path: String,
    module: Module,
    text: String,
}

/// A path found in a module, not yet resolved.
struct Reference {
    from: Module,
    path: Vec<String>,
    /// `file:line: the line`, shown when the reference closes a circle.
    location: String,
}

#[test]
fn no_two_modules_import_each_other() {
    let files = source_files(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        files.len() > 50,
        "the check reads src/ ({} files)",
        files.len()
    );
    let pairs = two_way_imports(&files);
    assert!(
        pairs.is_empty(),
        "modules that import each other (move what both need into a module both import):\n\n{}",
        pairs.join("\n\n")
    );
}

#[test]
fn the_check_finds_a_planted_two_way_import() {
    let file = |path: &str, text: &str| source_file(Path::new(path), text.into());
    let files = [
        file("src/lib.rs", "mod a;\nmod b;\nmod e;\n"),
        file("src/a.rs", "use super::b::{c::Thing, self};\n"),
        file(
            "src/b/mod.rs",
            "mod c;\nuse c::Thing; // use crate::a::X;\n",
        ),
        file(
            "src/b/c.rs",
            "use crate::e::Z;\nconst S: &str = \"crate::a::x\";\n",
        ),
        file("src/b/d.rs", "fn f() -> char {\n    crate::a::f('{')\n}\n"),
        file(
            "src/e.rs",
            "#[cfg(test)]\nmod tests {\n    use crate::b::Y;\n}\n",
        ),
    ];
    let pairs = two_way_imports(&files);
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    assert!(pairs[0].starts_with("a <-> b"), "{}", pairs[0]);
    assert!(
        pairs[0].contains("src/b/d.rs:2: crate::a::f('{')"),
        "{}",
        pairs[0]
    );
}

/// One message per pair of modules with edges both ways, naming one import each way.
fn two_way_imports(files: &[SourceFile]) -> Vec<String> {
    let mut known: BTreeSet<Module> = files.iter().map(|file| file.module.clone()).collect();
    let mut test_only = Vec::new();
    let mut references = Vec::new();
    for file in files {
        let scanned = scan(file);
        known.extend(scanned.inline_modules);
        test_only.extend(scanned.test_only);
        references.extend(scanned.references);
    }
    let mut edges: BTreeMap<(Module, Module), String> = BTreeMap::new();
    for reference in references {
        if test_only
            .iter()
            .any(|test| reference.from.starts_with(test))
        {
            continue;
        }
        let Some(to) = resolve(&reference.path, &reference.from, &known) else {
            continue;
        };
        if let Some(pair) = siblings(&reference.from, &to) {
            edges.entry(pair).or_insert(reference.location);
        }
    }
    let mut pairs = Vec::new();
    for ((a, b), location) in &edges {
        if let Some(back) = edges.get(&(b.clone(), a.clone())).filter(|_| a < b) {
            let (a, b) = (show(a), show(b));
            pairs.push(format!(
                "{a} <-> {b}\n  {a} -> {b} at {location}\n  {b} -> {a} at {back}"
            ));
        }
    }
    pairs
}

/// What one file declares and uses.
#[derive(Default)]
struct Scan {
    inline_modules: Vec<Module>,
    /// Modules declared under `#[cfg(test)]`, inline or in their own file.
    test_only: Vec<Module>,
    references: Vec<Reference>,
}

fn scan(file: &SourceFile) -> Scan {
    let code = code_only(&file.text);
    let tokens = tokenize(&code);
    let text = |i: usize| tokens.get(i).map_or("", |token| token.1);
    let location = |offset: usize| {
        let line = code[..offset].matches('\n').count() + 1;
        let shown = file.text.lines().nth(line - 1).unwrap_or("").trim();
        format!("{}:{line}: {shown}", file.path)
    };
    let mut scan = Scan::default();
    // The inline modules open at this point, with the brace depth inside each.
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let current: Module = file
            .module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(_, name)| name.clone()))
            .collect();
        match text(i) {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                while inline.last().is_some_and(|(opened, _)| *opened > depth) {
                    inline.pop();
                }
            }
            "mod" if is_word(text(i + 1)) => {
                let module = [current.clone(), vec![text(i + 1).to_owned()]].concat();
                if under_cfg_test(&tokens, i) {
                    scan.test_only.push(module.clone());
                }
                if text(i + 2) == "{" {
                    inline.push((depth + 1, text(i + 1).to_owned()));
                    scan.inline_modules.push(module);
                }
            }
            "use" => {
                let mut paths = Vec::new();
                i += 1;
                use_tree(&tokens, &mut i, Vec::new(), &mut paths);
                for (path, offset) in paths {
                    scan.references.push(Reference {
                        from: current.clone(),
                        path,
                        location: location(offset),
                    });
                }
                continue;
            }
            "crate" | "super" | "self"
                if text(i + 1) == "::" && text(i.wrapping_sub(1)) != "::" =>
            {
                let start = tokens[i].0;
                let mut path = vec![text(i).to_owned()];
                while text(i + 1) == "::" && is_word(text(i + 2)) {
                    path.push(text(i + 2).to_owned());
                    i += 2;
                }
                scan.references.push(Reference {
                    from: current,
                    path,
                    location: location(start),
                });
            }
            _ => {}
        }
        i += 1;
    }
    scan
}

/// True when the `mod` at `i` follows `#[cfg(test)]`, with or without a visibility between.
fn under_cfg_test(tokens: &[(usize, &str)], mut i: usize) -> bool {
    let text = |i: usize| tokens.get(i).map_or("", |token| token.1);
    while i > 0
        && matches!(
            text(i - 1),
            "pub" | "(" | ")" | "crate" | "super" | "in" | "self" | "::"
        )
    {
        i -= 1;
    }
    i >= 7
        && (i - 7..i)
            .map(text)
            .eq(["#", "[", "cfg", "(", "test", ")", "]"])
}

/// Expands a `use` tree into its paths, each with the offset of its last segment.
fn use_tree(
    tokens: &[(usize, &str)],
    i: &mut usize,
    mut path: Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) {
    let text = |i: usize| tokens.get(i).map_or("", |token| token.1);
    while *i < tokens.len() {
        match text(*i) {
            "::" => *i += 1,
            "{" => {
                *i += 1;
                while !matches!(text(*i), "}" | "") {
                    use_tree(tokens, i, path.clone(), out);
                    if text(*i) == "," {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            word if is_word(word) || word == "*" => {
                if !matches!(word, "self" | "*") || path.is_empty() {
                    path.push(word.to_owned());
                }
                let offset = tokens[*i].0;
                *i += 1;
                if text(*i) == "as" {
                    *i += 2;
                }
                if text(*i) != "::" {
                    out.push((path, offset));
                    return;
                }
            }
            _ => return,
        }
    }
}

/// The deepest known module a path names, for paths from `crate`, `super` or `self`.
fn resolve(path: &[String], from: &Module, known: &BTreeSet<Module>) -> Option<Module> {
    let supers = path
        .iter()
        .take_while(|segment| *segment == "super")
        .count();
    let (mut module, rest) = match path.first()?.as_str() {
        "crate" => (from[..1].to_vec(), &path[1..]),
        "self" => (from.clone(), &path[1..]),
        "super" if supers < from.len() => (from[..from.len() - supers].to_vec(), &path[supers..]),
        _ => return None,
    };
    for segment in rest {
        let child = [module.clone(), vec![segment.clone()]].concat();
        if !known.contains(&child) {
            break;
        }
        module = child;
    }
    Some(module)
}

/// The children of `from`'s and `to`'s lowest common ancestor on each side; none when one
/// contains the other.
fn siblings(from: &Module, to: &Module) -> Option<(Module, Module)> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    (common < from.len() && common < to.len())
        .then(|| (from[..=common].to_vec(), to[..=common].to_vec()))
}

fn show(module: &Module) -> String {
    let shown = if module[0] == LIBRARY {
        &module[1..]
    } else {
        &module[..]
    };
    shown.join("::")
}

/// Every `.rs` file under `src/`.
fn source_files(package: &Path) -> Vec<SourceFile> {
    let mut paths = Vec::new();
    rust_files(&package.join("src"), &mut paths);
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = fs::read_to_string(path).unwrap();
            source_file(path.strip_prefix(package).unwrap(), text)
        })
        .collect()
}

/// A file by its path in the package: `src/graph/mod.rs` is the module `graph` of the library,
/// `src/bin/kubectl-entra/wait.rs` the module `wait` of the crate `kubectl-entra`.
fn source_file(path: &Path, text: String) -> SourceFile {
    let mut parts: Vec<String> = path
        .strip_prefix("src")
        .unwrap()
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let (name, root) = match parts.first().map(String::as_str) {
        Some("main") if parts.len() == 1 => ("entra-operator".to_owned(), "main"),
        Some("bin") => (parts.drain(..2).nth(1).unwrap(), "main"),
        _ => (LIBRARY.to_owned(), "lib"),
    };
    if parts.last().is_some_and(|last| last == "mod") || parts == [root] {
        parts.pop();
    }
    SourceFile {
        path: path.display().to_string(),
        module: [vec![name], parts].concat(),
        text,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The code with comments, strings and char literals blanked (newlines kept), so that what is
/// left of braces, keywords and paths is code.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let find = |from: usize, pattern: &dyn Fn(usize) -> bool| {
        (from..chars.len())
            .find(|&j| pattern(j))
            .unwrap_or(chars.len())
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        // Where a word starts: an `r` there opens a raw string (`r"`, `r#"`, also after a `b`).
        let word_starts_at = |j: usize| j == 0 || !is_word_char(at(j - 1));
        let raw_string_opens =
            word_starts_at(i) || (at(i.wrapping_sub(1)) == 'b' && word_starts_at(i - 1));
        let hashes = (i + 1..).take_while(|&j| at(j) == '#').count();
        let end = match (at(i), at(i + 1)) {
            ('/', '/') => find(i, &|j| at(j) == '\n'),
            ('/', '*') => {
                let mut nesting = 0;
                let mut j = i;
                loop {
                    match (at(j), at(j + 1)) {
                        ('/', '*') => (nesting, j) = (nesting + 1, j + 2),
                        ('*', '/') if nesting == 1 => break j + 2,
                        ('*', '/') => (nesting, j) = (nesting - 1, j + 2),
                        ('\0', _) => break chars.len(),
                        _ => j += 1,
                    }
                }
            }
            ('r', _) if raw_string_opens && at(i + 1 + hashes) == '"' => {
                let closes = |j: usize| at(j) == '"' && (1..=hashes).all(|k| at(j + k) == '#');
                find(i + 2 + hashes, &closes) + 1 + hashes
            }
            ('"', _) => {
                let mut j = i + 1;
                while !matches!(at(j), '"' | '\0') {
                    j += if at(j) == '\\' { 2 } else { 1 };
                }
                j + 1
            }
            ('\'', '\\') => find(i + 3, &|j| at(j) == '\'') + 1,
            ('\'', _) if at(i + 2) == '\'' => i + 3,
            _ => i,
        };
        if end == i {
            out.push(chars[i]);
            i += 1;
        } else {
            let end = end.min(chars.len());
            out.extend(
                chars[i..end]
                    .iter()
                    .map(|&c| if c == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        }
    }
    out
}

/// Words, `::` and single punctuation characters, each with its byte offset.
fn tokenize(code: &str) -> Vec<(usize, &str)> {
    let mut tokens = Vec::new();
    let mut rest = code.char_indices().peekable();
    while let Some((start, c)) = rest.next() {
        let mut end = start + c.len_utf8();
        if is_word_char(c) {
            while let Some(&(at, next)) = rest.peek().filter(|(_, next)| is_word_char(*next)) {
                end = at + next.len_utf8();
                rest.next();
            }
        } else if c == ':' && rest.peek().is_some_and(|(_, next)| *next == ':') {
            end += 1;
            rest.next();
        } else if c.is_whitespace() {
            continue;
        }
        tokens.push((start, &code[start..end]));
    }
    tokens
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_word(text: &str) -> bool {
    text.chars().next().is_some_and(is_word_char)
}
