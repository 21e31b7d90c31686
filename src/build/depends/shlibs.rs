//! Sonames to Debian packages, the way `dpkg-shlibdeps` maps them: from the symbols and
//! shlibs files of the installed packages.
//!
//! Why not run `dpkg-shlibdeps` itself: it insists on finding every needed library on the
//! build machine, including those the tree bundles or the manifest maps or ignores by hand
//! (it has no way to skip one soname), it needs a `debian/control` and dpkg-dev, and it
//! runs `objdump` once per file. The part of its work that matters here is small and
//! well specified (deb-symbols(5), deb-shlibs(5)): find the library the loader would use,
//! ask dpkg which package owns it, then take the dependency template of that package's
//! symbols file with the highest minimal version of the symbols the files import, or its
//! shlibs entry when it has no symbols file. The integration tests compare the result with
//! `dpkg-shlibdeps` on the same files.
//!
//! Symbols-file patterns tagged `(c++)` or `(regex)` are not matched: a symbol that only
//! such a pattern covers counts at the file's smallest version.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use foldhash::{HashMap, HashMapExt};
use rayon::prelude::*;

use crate::build::depends::dpkg_owners;
use crate::build::depends::elf::{read_machine, ElfReport, Machine};
use crate::build::manifest::LoadedManifest;
use crate::build::runner::SystemRoot;
use crate::debian::version;

/// The Depends entries that satisfy the report's sonames, from the libraries and dpkg
/// database of `system` (the host, or the target's build root).
pub(crate) fn resolve(
    manifest: &LoadedManifest,
    report: &ElfReport,
    system: &SystemRoot,
) -> Result<Vec<String>> {
    let (mut relations, wanted) = declared_and_wanted(manifest, report);
    if wanted.is_empty() {
        return Ok(merge(relations));
    }
    let Some(machine) = report.machine else {
        return Err(crate::report::InternalError(
            "ELF report has needed sonames but no machine".to_string(),
        )
        .into());
    };
    let admin_dir = system.dpkg_admin_dir();
    let directories = search_directories(&machine, system);

    // Every file on the loader's path that could be each soname, in the loader's order.
    // The lookups below run on every core: by now the md5 pass has ended, and the build
    // waits for the Depends field.
    let candidates = candidates(&wanted, &directories, &machine, system);
    // The names dpkg may know each library by, worked out once (each costs a
    // canonicalisation).
    let names_of: BTreeMap<&PathBuf, Vec<PathBuf>> = candidates
        .values()
        .flatten()
        .map(|path| (path, aliases(path, system)))
        .collect();
    let files: Vec<&[PathBuf]> = names_of.values().map(Vec::as_slice).collect();
    let owners = dpkg_owners::owners(&admin_dir, &files)?;

    let architecture = machine.debian_architecture().unwrap_or("all");
    // Each soname's library and package, or why it has none; reported in the order of
    // `wanted` once the symbols files are read.
    let providers: Vec<Result<(&PathBuf, &String)>> = wanted
        .iter()
        .map(|(soname, file)| {
            let found = candidates.get(soname).map(Vec::as_slice).unwrap_or(&[]);
            provider(found, &names_of, &owners).ok_or_else(|| {
                let reason = if found.is_empty() {
                    let machine = if system.is_host() {
                        "the build machine".to_string()
                    } else {
                        format!(
                            "the build root {}",
                            system.host_path(Path::new("/")).display()
                        )
                    };
                    format!(
                        "is not installed on {machine} (searched {})",
                        join_paths(&directories)
                    )
                } else {
                    format!(
                        "is found at {} but belongs to no installed Debian package",
                        join_paths(found)
                    )
                };
                unresolved(manifest, soname, file, &reason)
            })
        })
        .collect();

    let (symbols_files, texts) =
        read_symbols_files(&admin_dir, system, architecture, &wanted, &providers);
    let mut objects: BTreeMap<&str, SymbolsObject> = symbols_files
        .par_iter()
        .zip(&texts)
        .filter_map(|((_, sonames), text)| Some(parse_symbols(text.as_ref().ok()?, sonames)))
        .reduce(BTreeMap::new, |mut all, some| {
            all.extend(some);
            all
        });
    // Errors are reported in the order of `wanted`, as if each soname were looked up in
    // turn: the same tree gives the same message.
    let unreadable = |soname: &str| {
        symbols_files
            .iter()
            .zip(&texts)
            .find(|((_, sonames), _)| sonames.contains(&soname))
            .and_then(|((path, _), text)| Some((path, text.as_ref().err()?)))
    };
    let mut minimal: BTreeMap<&str, SymbolsObject> = BTreeMap::new();
    for ((soname, file), provider) in wanted.iter().zip(providers) {
        let (library, package) = provider?;
        if let Some((path, error)) = unreadable(soname) {
            bail!("{}: cannot be read: {error}", path.display());
        }
        if let Some(object) = objects.remove(soname) {
            minimal.insert(soname, object);
        } else if let Some(relation) =
            read_shlibs(&admin_dir, system, package, architecture, soname)?
        {
            relations.push(relation);
        } else {
            let reason = format!(
                "is provided by {} of package {package}, which has neither a symbols nor a \
                 shlibs entry for it",
                library.display()
            );
            return Err(unresolved(manifest, soname, file, &reason));
        }
    }
    raise_to_the_symbols_used(report, &mut minimal);
    for object in minimal.values() {
        relations.push(object.relation());
    }
    Ok(merge(relations))
}

/// Splits the sonames the tree needs into the relations the manifest declares for them
/// and the sonames to look up (each with a file that needs it); ignored ones are dropped.
fn declared_and_wanted<'a>(
    manifest: &LoadedManifest,
    report: &'a ElfReport,
) -> (Vec<String>, Vec<(&'a str, &'a Path)>) {
    let depends = &manifest.manifest.depends;
    let ignored: BTreeSet<&str> = depends.ignore_sonames.iter().map(String::as_str).collect();
    let mut relations: Vec<String> = Vec::new();
    let mut wanted: Vec<(&str, &Path)> = Vec::new();
    for (soname, file) in &report.needed {
        if ignored.contains(soname.as_str()) {
            continue;
        }
        if let Some(relation) = depends.sonames.get(soname) {
            relations.push(relation.clone());
            continue;
        }
        wanted.push((soname, file));
    }
    (relations, wanted)
}

/// The symbols files of the packages that provide the sonames, each with the sonames it
/// is read for, and their texts: each file is read once (on every core), however many
/// of its sonames the tree needs.
type SymbolsFiles<'a> = (Vec<(PathBuf, Vec<&'a str>)>, Vec<std::io::Result<String>>);

fn read_symbols_files<'a>(
    admin_dir: &Path,
    system: &SystemRoot,
    architecture: &str,
    wanted: &[(&'a str, &Path)],
    providers: &[Result<(&PathBuf, &String)>],
) -> SymbolsFiles<'a> {
    let mut symbols_files: BTreeMap<PathBuf, Vec<&str>> = BTreeMap::new();
    for ((soname, _), provider) in wanted.iter().zip(providers) {
        if let Ok((_, package)) = provider {
            if let Some(path) = symbols_file(admin_dir, system, package, architecture) {
                symbols_files.entry(path).or_default().push(soname);
            }
        }
    }
    let symbols_files: Vec<(PathBuf, Vec<&str>)> = symbols_files.into_iter().collect();
    let texts = symbols_files
        .par_iter()
        .map(|(path, _)| std::fs::read_to_string(path))
        .collect();
    (symbols_files, texts)
}

/// Every file on the loader's path that could be each soname, in the loader's order.
fn candidates<'a>(
    wanted: &[(&'a str, &Path)],
    directories: &[PathBuf],
    machine: &Machine,
    system: &SystemRoot,
) -> BTreeMap<&'a str, Vec<PathBuf>> {
    wanted
        .par_iter()
        .map(|(soname, _)| {
            let found = directories
                .iter()
                .map(|directory| directory.join(soname))
                .filter(|path| {
                    matches!(read_machine(&system.host_path(path)), Ok(Some(library)) if machine.loads(&library))
                })
                .collect();
            (*soname, found)
        })
        .collect()
}

/// The first candidate that an installed package owns (under any of its names), with
/// that package.
fn provider<'a>(
    found: &'a [PathBuf],
    names_of: &BTreeMap<&PathBuf, Vec<PathBuf>>,
    owners: &'a BTreeMap<PathBuf, String>,
) -> Option<(&'a PathBuf, &'a String)> {
    found.iter().find_map(|path| {
        names_of
            .get(path)?
            .iter()
            .find_map(|name| owners.get(name))
            .map(|package| (path, package))
    })
}

/// Raises each library's minimal version to the highest version among the symbols the
/// tree's files import from it.
fn raise_to_the_symbols_used(report: &ElfReport, minimal: &mut BTreeMap<&str, SymbolsObject>) {
    for imports in &report.imports {
        for symbol in &imports.symbols {
            let found = imports.sonames.iter().find_map(|soname| {
                let version = minimal.get(soname.as_str())?.lookup(symbol)?;
                Some((soname, version))
            });
            if let Some((soname, version)) = found {
                if let Some(object) = minimal.get_mut(soname.as_str()) {
                    object.raise(version);
                }
            }
        }
    }
}

/// The error for a soname that cannot be mapped to a package, with the three ways out.
fn unresolved(manifest: &LoadedManifest, soname: &str, file: &Path, reason: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: the soname {soname}, needed by {}, {reason}. Install the package that \
         provides it on the build machine, map it by hand with [depends.sonames] \
         \"{soname}\" = \"package (>= version)\", or ignore it with [depends] \
         ignore-sonames = [\"{soname}\"]",
        manifest.path.display(),
        file.display()
    )
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The directories the dynamic loader searches, in its order: ld.so.conf, then the
/// multiarch and default directories.
fn search_directories(machine: &Machine, system: &SystemRoot) -> Vec<PathBuf> {
    let mut directories = Vec::new();
    read_ld_so_conf(Path::new("/etc/ld.so.conf"), system, &mut directories, 0);
    if let Some(triplet) = machine.multiarch_triplet() {
        directories.push(PathBuf::from(format!("/lib/{triplet}")));
        directories.push(PathBuf::from(format!("/usr/lib/{triplet}")));
    }
    directories.push(PathBuf::from("/lib"));
    directories.push(PathBuf::from("/usr/lib"));
    if machine.is_64 {
        directories.push(PathBuf::from("/lib64"));
        directories.push(PathBuf::from("/usr/lib64"));
    }
    let mut seen = BTreeSet::new();
    directories.retain(|directory| seen.insert(directory.clone()));
    directories
}

/// Reads `path` (as `system` sees it) and the files it includes.
fn read_ld_so_conf(path: &Path, system: &SystemRoot, directories: &mut Vec<PathBuf>, depth: usize) {
    let Ok(text) = std::fs::read_to_string(system.host_path(path)) else {
        return;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include") {
            if depth < 4 {
                for included in expand_include(pattern.trim(), system) {
                    read_ld_so_conf(&included, system, directories, depth + 1);
                }
            }
        } else if line.starts_with('/') {
            directories.push(PathBuf::from(line));
        }
    }
}

/// Expands an `include` line of ld.so.conf: a path whose file name may hold one `*`.
fn expand_include(pattern: &str, system: &SystemRoot) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let (Some(directory), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![path.to_path_buf()];
    };
    let Ok(entries) = std::fs::read_dir(system.host_path(directory)) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| directory.join(entry.file_name()))
        .filter(|path| {
            path.file_name().is_some_and(|file_name| {
                let file_name = file_name.to_string_lossy();
                file_name.starts_with(prefix) && file_name.ends_with(suffix)
            })
        })
        .collect();
    found.sort();
    found
}

/// The names dpkg may know a library file by: the path, its canonical form, and each with
/// `/usr` added or removed (merged-/usr systems keep the unmerged names in dpkg's database).
fn aliases(path: &Path, system: &SystemRoot) -> Vec<PathBuf> {
    let mut names = vec![path.to_path_buf()];
    if let Some(real) = system.canonicalize(path) {
        names.push(real);
    }
    for name in names.clone() {
        let text = name.to_string_lossy().into_owned();
        match text.strip_prefix("/usr") {
            Some(rest) => names.push(PathBuf::from(rest)),
            None => names.push(PathBuf::from(format!("/usr{text}"))),
        }
    }
    names
}

/// The info files of a package (`zlib1g:amd64`, `zlib1g`), the qualified name first.
fn info_files(admin_dir: &Path, package: &str, architecture: &str, suffix: &str) -> Vec<PathBuf> {
    let name = package.split(':').next().unwrap_or(package);
    let info = admin_dir.join("info");
    vec![
        info.join(format!("{package}.{suffix}")),
        info.join(format!("{name}:{architecture}.{suffix}")),
        info.join(format!("{name}.{suffix}")),
    ]
}

/// One object (soname) of a symbols file, borrowed from the file's text.
#[derive(Debug, Clone)]
struct SymbolsObject<'a> {
    /// The dependency template, with `#MINVER#` where the version goes.
    template: &'a str,
    /// `name@version` to minimal version.
    symbols: HashMap<&'a str, &'a str>,
    /// `(symver)` patterns: symbol version to minimal version.
    symbol_versions: HashMap<&'a str, &'a str>,
    /// The version the dependency has so far.
    minimal: &'a str,
}

impl<'a> SymbolsObject<'a> {
    fn lookup(&self, symbol: &str) -> Option<&'a str> {
        if let Some(version) = self.symbols.get(symbol) {
            return Some(version);
        }
        let (_, symbol_version) = symbol.rsplit_once('@')?;
        self.symbol_versions.get(symbol_version).copied()
    }

    fn raise(&mut self, candidate: &'a str) {
        // Most symbols of a library share a few versions: equal ones need no comparing.
        if candidate != self.minimal && version::compare(candidate, self.minimal).is_gt() {
            self.minimal = candidate;
        }
    }

    fn relation(&self) -> String {
        let replacement = if self.minimal.is_empty() || self.minimal == "0" {
            String::new()
        } else {
            format!("(>= {})", self.minimal)
        };
        self.template
            .split(" | ")
            .map(|alternative| {
                alternative
                    .replace("#MINVER#", &replacement)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// The symbols file that describes a package's libraries (deb-symbols(5)): the local
/// override in /etc/dpkg/symbols, then the package's own.
fn symbols_file(
    admin_dir: &Path,
    system: &SystemRoot,
    package: &str,
    architecture: &str,
) -> Option<PathBuf> {
    std::iter::once(system.host_path(Path::new(&format!(
        "/etc/dpkg/symbols/{}.symbols.{architecture}",
        package.split(':').next().unwrap_or(package)
    ))))
    .chain(info_files(admin_dir, package, architecture, "symbols"))
    .find(|path| path.is_file())
}

/// The objects of a symbols file that `sonames` name.
fn parse_symbols<'a, 's>(
    text: &'a str,
    sonames: &[&'s str],
) -> BTreeMap<&'s str, SymbolsObject<'a>> {
    let mut objects: BTreeMap<&'s str, SymbolsObject<'a>> = BTreeMap::new();
    let mut current: Option<&'s str> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('|') || line.starts_with('*') {
            continue;
        }
        if line.starts_with('#') {
            // Comments, and symbols marked #MISSING# or #DEPRECATED#, which no longer count.
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            let (name, template) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            current = sonames.iter().find(|soname| **soname == name).copied();
            if let Some(soname) = current {
                // A name met again continues its object with the later template, as
                // dpkg's Dpkg::Shlibs::SymbolFile reads it.
                objects
                    .entry(soname)
                    .and_modify(|object| object.template = template.trim())
                    .or_insert_with(|| SymbolsObject {
                        template: template.trim(),
                        symbols: HashMap::new(),
                        symbol_versions: HashMap::new(),
                        minimal: "",
                    });
            }
            continue;
        }
        let Some(object) = current.and_then(|soname| objects.get_mut(soname)) else {
            continue;
        };
        let mut entry = line.trim();
        let mut tags: Vec<&str> = Vec::new();
        if let Some(rest) = entry.strip_prefix('(') {
            let Some((tag_text, after)) = rest.split_once(')') else {
                continue;
            };
            tags = tag_text.split('|').map(str::trim).collect();
            entry = after;
        }
        let mut words = entry.split_whitespace();
        let (Some(symbol), Some(minimal)) = (words.next(), words.next()) else {
            continue;
        };
        if object.minimal.is_empty()
            || (minimal != object.minimal && version::compare(minimal, object.minimal).is_lt())
        {
            object.minimal = minimal;
        }
        if tags.contains(&"symver") {
            object.symbol_versions.insert(symbol, minimal);
        } else if !tags.iter().any(|tag| *tag == "c++" || *tag == "regex") {
            object.symbols.insert(symbol, minimal);
        }
    }
    objects
}

/// The shlibs entry for `soname` (deb-shlibs(5)): the override file, the package's own
/// file, then the default file.
fn read_shlibs(
    admin_dir: &Path,
    system: &SystemRoot,
    package: &str,
    architecture: &str,
    soname: &str,
) -> Result<Option<String>> {
    let Some((library, version)) = split_soname(soname) else {
        return Ok(None);
    };
    let mut files = vec![system.host_path(Path::new("/etc/dpkg/shlibs.override"))];
    files.extend(info_files(admin_dir, package, architecture, "shlibs"));
    files.push(system.host_path(Path::new("/etc/dpkg/shlibs.default")));
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.splitn(2, char::is_whitespace);
            let first = words.next().unwrap_or("");
            let rest = words.next().unwrap_or("").trim_start();
            if first.ends_with(':') {
                // A typed entry (`udeb:`) is for installer packages, not for us.
                continue;
            }
            let mut fields = rest.splitn(2, char::is_whitespace);
            let entry_version = fields.next().unwrap_or("");
            let relation = fields.next().unwrap_or("").trim();
            if first == library && entry_version == version && !relation.is_empty() {
                return Ok(Some(relation.to_string()));
            }
        }
    }
    Ok(None)
}

/// Splits a soname into the library name and version the way dpkg does:
/// `libfoo.so.1` gives (`libfoo`, `1`) and `libfoo-1.2.so` gives (`libfoo`, `1.2`).
fn split_soname(soname: &str) -> Option<(&str, &str)> {
    if let Some(index) = soname.find(".so.") {
        let (library, version) = (&soname[..index], &soname[index + 4..]);
        if !library.is_empty() && !version.is_empty() {
            return Some((library, version));
        }
    }
    // dpkg's `^(.*)-(\d.*)\.so$`: the last `-` that a digit follows, so a version may
    // hold a `-` itself (`libopcodes-2.40-system.so` is libopcodes, 2.40-system).
    let stem = soname.strip_suffix(".so")?;
    stem.match_indices('-')
        .rev()
        .map(|(index, _)| (&stem[..index], &stem[index + 1..]))
        .find(|(library, version)| {
            !library.is_empty() && version.starts_with(|c: char| c.is_ascii_digit())
        })
}

/// Merges relations: for a package named twice with `>=` constraints only the highest is
/// kept; duplicates are dropped; the result is sorted.
fn merge(relations: Vec<String>) -> Vec<String> {
    let mut highest: BTreeMap<String, String> = BTreeMap::new();
    let mut others: BTreeSet<String> = BTreeSet::new();
    for relation in relations {
        let relation = relation.trim().to_string();
        let simple = relation
            .split_once(" (>= ")
            .and_then(|(name, rest)| Some((name, rest.strip_suffix(')')?)))
            .filter(|(name, _)| !name.contains(['|', ' ', ',']));
        match simple {
            Some((name, minimal)) => {
                let keep = highest
                    .get(name)
                    .is_none_or(|current| version::compare(minimal, current).is_gt());
                if keep {
                    highest.insert(name.to_string(), minimal.to_string());
                }
            }
            None => {
                others.insert(relation);
            }
        }
    }
    // A bare name is implied by the same name with a version constraint.
    others.retain(|relation| !highest.contains_key(relation));
    let mut all: Vec<String> = highest
        .into_iter()
        .map(|(name, minimal)| format!("{name} (>= {minimal})"))
        .chain(others)
        .collect();
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sonames_split_like_dpkg() {
        assert_eq!(split_soname("libz.so.1"), Some(("libz", "1")));
        assert_eq!(split_soname("libfoo-1.2.so"), Some(("libfoo", "1.2")));
        assert_eq!(split_soname("libfoo.so"), None);
        assert_eq!(
            split_soname("libopcodes-2.40-system.so"),
            Some(("libopcodes", "2.40-system"))
        );
        assert_eq!(split_soname("libfoo-bar.so"), None);
    }

    #[test]
    fn symbols_give_the_highest_version_used() {
        let text = "libz.so.1 zlib1g #MINVER#\n\
                    * Build-Depends-Package: zlib1g-dev\n \
                    adler32@Base 1:1.1.4\n \
                    ZLIB_1.2.0@ZLIB_1.2.0 1:1.2.0\n \
                    deflateBound@ZLIB_1.2.0 1:1.2.0\n\
                    libother.so.2 other #MINVER#\n \
                    x@Base 9\n\
                    libz.so.1 zlib1g-ng #MINVER#\n \
                    gzopen64@ZLIB_1.2.3.3 1:1.2.3.3\n";
        let mut objects = parse_symbols(text, &["libz.so.1", "libnone.so.1", "libother.so.2"]);
        assert_eq!(objects.len(), 2);
        assert_eq!(objects["libother.so.2"].relation(), "other (>= 9)");
        // libz.so.1 is named twice: one object, with the later template and the symbols
        // of both parts.
        let object = objects.get_mut("libz.so.1").expect("object");
        assert_eq!(object.relation(), "zlib1g-ng (>= 1:1.1.4)");
        assert_eq!(object.lookup("x@Base"), None);
        assert_eq!(object.lookup("gzopen64@ZLIB_1.2.3.3"), Some("1:1.2.3.3"));
        let version = object.lookup("deflateBound@ZLIB_1.2.0");
        object.raise(version.expect("known symbol"));
        assert_eq!(object.relation(), "zlib1g-ng (>= 1:1.2.0)");
    }

    #[test]
    fn merge_keeps_the_highest_constraint() {
        let merged = merge(vec![
            "libc6 (>= 2.14)".into(),
            "zlib1g (>= 1:1.1.4)".into(),
            "libc6 (>= 2.34)".into(),
            "libc6".into(),
            "a | b".into(),
        ]);
        assert_eq!(merged, ["a | b", "libc6 (>= 2.34)", "zlib1g (>= 1:1.1.4)"]);
    }

    use crate::build::depends::fixture::{dpkg_shlibdeps, Fixture};

    #[test]
    fn shlibs_mapping_agrees_with_dpkg_shlibdeps() {
        let fixture = Fixture::new();
        let report = fixture
            .inspect(&["tree/bin/exe", "tree/lib/libfoo.so.1"])
            .expect("inspect");
        let ours = resolve(&fixture.manifest(""), &report, &SystemRoot::host()).expect("resolve");
        let theirs = dpkg_shlibdeps(
            &fixture.path("shlibdeps"),
            &[
                fixture.path("tree/bin/exe"),
                fixture.path("tree/lib/libfoo.so.1"),
            ],
            &fixture.path("tree/lib"),
        );
        assert_eq!(ours, theirs);
        assert!(
            ours.iter()
                .any(|relation| relation.starts_with("zlib1g (>= 1:")),
            "{ours:?}"
        );
        assert!(
            ours.iter()
                .any(|relation| relation.starts_with("libc6 (>= ")),
            "{ours:?}"
        );
    }

    #[test]
    fn unmapped_soname_fails_naming_it_and_the_keys_and_manual_rules_apply() {
        let fixture = Fixture::new();
        std::fs::copy(
            fixture.path("needs-missing"),
            fixture.path("tree/bin/needs-missing"),
        )
        .expect("copy");
        let report = fixture
            .inspect(&["tree/bin/needs-missing"])
            .expect("inspect");
        let error = resolve(&fixture.manifest(""), &report, &SystemRoot::host())
            .expect_err("an unknown soname fails");
        let message = format!("{error:#}");
        for expected in [
            "libmissing.so.7",
            "bin/needs-missing",
            "[depends.sonames]",
            "ignore-sonames",
            "debstage.toml",
        ] {
            assert!(message.contains(expected), "{expected:?} not in {message}");
        }

        let manifest = fixture.manifest("[depends]\nignore-sonames = [\"libmissing.so.7\"]\n");
        let relations = resolve(&manifest, &report, &SystemRoot::host()).expect("ignored");
        assert!(relations
            .iter()
            .all(|relation| !relation.contains("missing")));
        assert!(relations
            .iter()
            .any(|relation| relation.starts_with("libc6 ")));

        let manifest =
            fixture.manifest("[depends.sonames]\n\"libmissing.so.7\" = \"libmissing7 (>= 7.1)\"\n");
        let relations = resolve(&manifest, &report, &SystemRoot::host()).expect("mapped");
        assert!(
            relations.contains(&"libmissing7 (>= 7.1)".to_string()),
            "{relations:?}"
        );
    }
}
