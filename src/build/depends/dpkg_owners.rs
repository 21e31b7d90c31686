//! Which installed Debian package owns a file: the question `dpkg-query -S` answers, for
//! the libraries a build links against.
//!
//! dpkg-query loads its whole database, the status file and every package's file list,
//! whatever it is asked, and the build waits for it. The file lists are plain files,
//! `<admindir>/info/<package>.list` with one path per line, in the directory from which
//! dpkg-shlibdeps reads the symbols and shlibs files too; reading them on every core is
//! several times faster (bench/NOTES.md).
//!
//! The lists alone cannot answer every case the way dpkg does, and then dpkg-query gives
//! the answer: a name involved in a diversion (dpkg-divert moves a package's file aside,
//! and dpkg-query reports the diversion), a name two packages list, lists that cannot be
//! read, or a file that no list names. The integration tests compare both ways on the machine's own libraries.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use foldhash::{HashMap, HashMapExt, HashSet};
use rayon::prelude::*;

/// The package that owns each of the `files` among the installed packages of the dpkg
/// database in `admin_dir`, by whichever of a file's names (absolute paths: the path, its
/// canonical form, its `/usr` aliases) the database holds; names no package owns are left
/// out.
pub(crate) fn owners(admin_dir: &Path, files: &[&[PathBuf]]) -> Result<BTreeMap<PathBuf, String>> {
    let names: BTreeSet<PathBuf> = files.iter().copied().flatten().cloned().collect();
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut owners = match from_file_lists(admin_dir, &names) {
        Ok(Some(owners)) => owners,
        // The lists could not give dpkg's answer; dpkg-query will.
        Ok(None) | Err(_) => return from_dpkg_query(admin_dir, &names),
    };
    // A file no list names under any of its names is asked about again, of dpkg-query:
    // the lists are dpkg's internal database, and its own answer decides.
    let unowned: BTreeSet<PathBuf> = files
        .iter()
        .filter(|names| names.iter().all(|name| !owners.contains_key(name)))
        .copied()
        .flatten()
        .cloned()
        .collect();
    if !unowned.is_empty() {
        owners.extend(from_dpkg_query(admin_dir, &unowned)?);
    }
    Ok(owners)
}

/// Reads the owners from the packages' file lists; `None` when some name needs dpkg's
/// own rules (a diversion, or more than one package listing it).
pub(crate) fn from_file_lists(
    admin_dir: &Path,
    names: &BTreeSet<PathBuf>,
) -> Result<Option<BTreeMap<PathBuf, String>>> {
    if is_diverted(admin_dir, names)? {
        return Ok(None);
    }
    let info = admin_dir.join("info");
    let mut lists: Vec<(String, PathBuf)> = Vec::new();
    for entry in fs_err::read_dir(&info)? {
        let path = entry?.path();
        if let Some(package) = path
            .file_name()
            .and_then(OsStr::to_str)
            .and_then(|name| name.strip_suffix(".list"))
        {
            lists.push((package.to_string(), path));
        }
    }
    // About 125,000 lines on a developer's machine are looked up: a fast hash and a
    // SIMD newline search keep that well under the cost of opening the files.
    let wanted: HashSet<&[u8]> = names
        .iter()
        .map(|name| name.as_os_str().as_bytes())
        .collect();
    let found: Vec<Vec<(&[u8], String)>> = lists
        .par_iter()
        .map(|(package, path)| {
            let bytes = fs_err::read(path)?;
            let mut found = Vec::new();
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', &bytes).chain([bytes.len()]) {
                if let Some(name) = wanted.get(&bytes[start..end]) {
                    found.push((*name, package.clone()));
                }
                start = end + 1;
            }
            Ok(found)
        })
        .collect::<Result<_>>()?;
    let mut owners: HashMap<&[u8], String> = HashMap::new();
    for (name, package) in found.into_iter().flatten() {
        if owners.insert(name, package).is_some() {
            return Ok(None);
        }
    }
    Ok(Some(
        owners
            .into_iter()
            .map(|(name, package)| (PathBuf::from(OsStr::from_bytes(name)), package))
            .collect(),
    ))
}

/// Whether any of `names` is the original or the new name of a diversion. The
/// `diversions` file holds three lines per diversion: the original path, the path it
/// is diverted to, and the package that diverts it (`:` for a local diversion).
fn is_diverted(admin_dir: &Path, names: &BTreeSet<PathBuf>) -> Result<bool> {
    let path = admin_dir.join("diversions");
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => {
            return Err(error).with_context(|| format!("{}: cannot be read", path.display()))
        }
    };
    let lines: Vec<&[u8]> = text.split(|byte| *byte == b'\n').collect();
    Ok(lines.chunks(3).any(|diversion| {
        diversion
            .iter()
            .take(2)
            .any(|line| names.contains(Path::new(OsStr::from_bytes(line))))
    }))
}

/// Asks dpkg-query, in one call.
pub(crate) fn from_dpkg_query(
    admin_dir: &Path,
    names: &BTreeSet<PathBuf>,
) -> Result<BTreeMap<PathBuf, String>> {
    // dpkg-query exits 1 when some name is owned by no package; the others are still listed.
    let output = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admin_dir.display()))
        .arg("-S")
        .args(names)
        .env("LC_ALL", "C")
        .output()
        .context("cannot run dpkg-query, which maps libraries to the packages that own them")?;
    let mut owners = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        // Diversions are reported as `diversion by <package> from: <path>` and
        // `local diversion from: <path>`; they name no owner.
        if line.starts_with("diversion by") || line.starts_with("local diversion") {
            continue;
        }
        let Some((packages, path)) = line.split_once(": ") else {
            continue;
        };
        let path = PathBuf::from(path.trim());
        if names.contains(&path) {
            if let Some(package) = packages.split(", ").next() {
                owners.insert(path, package.trim().to_string());
            }
        }
    }
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(paths: &[&str]) -> BTreeSet<PathBuf> {
        paths.iter().map(PathBuf::from).collect()
    }

    fn admin_dir(lists: &[(&str, &str)], diversions: &str) -> Result<tempfile::TempDir> {
        let directory = tempfile::tempdir()?;
        std::fs::create_dir(directory.path().join("info"))?;
        for (package, text) in lists {
            std::fs::write(directory.path().join(format!("info/{package}.list")), text)?;
        }
        std::fs::write(directory.path().join("diversions"), diversions)?;
        Ok(directory)
    }

    #[test]
    fn lists_name_the_owner_of_whole_lines_only() -> Result<()> {
        let admin = admin_dir(
            &[
                ("zlib1g:amd64", "/.\n/usr/lib/x86_64-linux-gnu/libz.so.1\n"),
                ("other", "/usr/lib/x86_64-linux-gnu/libz.so.1.3\n"),
            ],
            "",
        )?;
        let wanted = names(&[
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            "/lib/x86_64-linux-gnu/libz.so.1",
        ]);
        let owners = from_file_lists(admin.path(), &wanted)?.expect("answered by the lists");
        assert_eq!(
            owners,
            BTreeMap::from([(
                PathBuf::from("/usr/lib/x86_64-linux-gnu/libz.so.1"),
                "zlib1g:amd64".to_string()
            )])
        );
        Ok(())
    }

    #[test]
    fn diversions_and_shared_names_are_left_to_dpkg() -> Result<()> {
        let diverted = admin_dir(
            &[("libfoo1", "/usr/lib/libfoo.so.1\n")],
            "/usr/lib/libfoo.so.1\n/usr/lib/libfoo.so.1.distrib\nlocal-tweaks\n",
        )?;
        let wanted = names(&["/usr/lib/libfoo.so.1"]);
        assert_eq!(from_file_lists(diverted.path(), &wanted)?, None);

        let shared = admin_dir(
            &[
                ("libfoo1", "/usr/lib/libfoo.so.1\n"),
                ("libfoo1-compat", "/usr/lib/libfoo.so.1\n"),
            ],
            "",
        )?;
        assert_eq!(from_file_lists(shared.path(), &wanted)?, None);
        Ok(())
    }

    /// The owners read from dpkg's file lists are dpkg-query's answer, on the libraries of
    /// the build machine (with the `/usr` aliases, most of which no package lists).
    #[test]
    fn file_lists_and_dpkg_query_agree_on_the_machines_libraries() {
        let admin = Path::new("/var/lib/dpkg");
        let output = std::process::Command::new("gcc")
            .arg("-print-multiarch")
            .output()
            .expect("gcc runs");
        let triplet = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let mut names = BTreeSet::new();
        for directory in [format!("/lib/{triplet}"), format!("/usr/lib/{triplet}")] {
            let Ok(entries) = std::fs::read_dir(directory) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.contains(".so.") {
                    names.insert(entry.path());
                    let text = entry.path().to_string_lossy().into_owned();
                    names.insert(PathBuf::from(match text.strip_prefix("/usr") {
                        Some(rest) => rest.to_string(),
                        None => format!("/usr{text}"),
                    }));
                }
            }
        }
        assert!(names.len() > 50, "few libraries found: {}", names.len());
        let from_lists = from_file_lists(admin, &names)
            .expect("lists readable")
            .expect("no name is diverted or listed twice");
        let from_query = from_dpkg_query(admin, &names).expect("dpkg-query runs");
        assert!(
            from_lists
                .values()
                .any(|package| package.starts_with("libc6")),
            "{from_lists:?}"
        );
        // dpkg-query qualifies a foreign package that is not Multi-Arch: same
        // (`libbar1:i386`), whose list file is `libbar1.list`; the symbols and shlibs lookup
        // finds that package's files under either name.
        let unqualified = |owners: BTreeMap<PathBuf, String>| {
            owners
                .into_iter()
                .map(|(path, package)| (path, package.split(':').next().unwrap_or("").to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(unqualified(from_lists), unqualified(from_query));
    }
}
