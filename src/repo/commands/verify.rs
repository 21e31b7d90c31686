//! `repo verify`: pool files against their recorded sizes and hashes, stage pointers
//! against listings, and the published `Packages` and `Release` files against the state.
//! Takes no lock and changes nothing but its own stamps (see [`seen`]): a pool file
//! unchanged since a verify found it whole is not read again unless `--full` is given.

mod seen;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde_json::json;

use crate::debian::control::Paragraphs;
use crate::debian::release::{release_entries, Algorithm};
use crate::repo::session::Repository;
use crate::repo::state::{self, PackageRecord, Role};
use crate::repo::suites as repo_suites;
use crate::repo::{pool, publish::packages::COMPONENT};
use crate::report::Reporter;

/// One entry of a Packages file, reduced to what must match the database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct IndexLine {
    package: String,
    version: String,
    architecture: String,
    filename: String,
    size: String,
    sha256: String,
}

impl IndexLine {
    fn of_record(package: &PackageRecord) -> IndexLine {
        IndexLine {
            package: package.identity.package.clone(),
            version: package.identity.version.clone(),
            architecture: package.identity.architecture.clone(),
            filename: package.filename.clone(),
            size: package.digests.size.to_string(),
            sha256: package.digests.sha256.clone(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {} ({})",
            self.package, self.version, self.architecture, self.filename
        )
    }
}

/// Reads the paragraphs of a Packages file with the one control parser.
fn parse_packages(text: &str) -> Result<Vec<IndexLine>> {
    Paragraphs::new(text)
        .map(|paragraph| {
            let paragraph = paragraph?;
            let field = |name: &str| paragraph.get(name).unwrap_or_default().trim().to_string();
            Ok(IndexLine {
                package: field("Package"),
                version: field("Version"),
                architecture: field("Architecture"),
                filename: field("Filename"),
                size: field("Size"),
                sha256: field("SHA256"),
            })
        })
        .collect()
}

/// The (size, sha256) a Release file gives for `path` in its SHA256 list.
fn release_entry(release: &str, path: &str) -> Option<(u64, String)> {
    release_entries(release)
        .into_iter()
        .find(|entry| entry.algorithm == Algorithm::Sha256 && entry.path == path)
        .map(|entry| (entry.size, entry.digest))
}

/// Runs `repo verify`; `full`: read every pool file, even those the stamps vouch for.
pub(crate) fn run(root: &Path, full: bool, reporter: &Reporter) -> Result<()> {
    let repository = Repository::open(root)?;
    let connection = state::open(root)?;
    let packages = state::all_packages(&connection)?;
    let mut problems = pool_file_problems(root, &packages, full, reporter);
    let mut warnings: Vec<String> = Vec::new();
    let known: HashSet<String> = packages.iter().map(|p| p.filename.clone()).collect();
    for orphan in pool::unreferenced(root, &known)? {
        warnings.push(format!(
            "{orphan}: in the pool but not recorded (repo gc deletes it)"
        ));
    }
    for waiting in pool::waiting(root) {
        warnings.push(format!(
            "{waiting}: left by an interrupted command (the next writer finishes it)"
        ));
    }

    let by_id: HashMap<i64, &PackageRecord> = packages.iter().map(|p| (p.id, p)).collect();
    let mut suites: BTreeMap<String, Vec<&PackageRecord>> = BTreeMap::new();
    for (suite, id) in state::listings(&connection)? {
        if let Some(package) = by_id.get(&id) {
            suites.entry(suite).or_default().push(package);
        }
    }
    // What each suite lists as (suite, app, version), stage packages aside: looked up
    // once per application and stage (a scan of the suite for each was quadratic, most
    // of the time of a verify of 20,000 plain packages).
    let listed_versions: HashSet<(&str, &str, &str)> = suites
        .iter()
        .flat_map(|(suite, listed)| {
            listed
                .iter()
                .filter(|package| package.role != Role::Stage)
                .map(move |package| {
                    (
                        suite.as_str(),
                        package.app.as_str(),
                        package.identity.version.as_str(),
                    )
                })
        })
        .collect();
    for (app, suite, version) in state::all_currents(&connection)? {
        let listed_there =
            listed_versions.contains(&(suite.as_str(), app.as_str(), version.as_str()));
        if !listed_there {
            problems.push(format!(
                "{app}: {suite} points to {version} but its suite does not list that version"
            ));
        }
    }
    let (layer_problems, layer_warnings) = crate::repo::layers::check(&connection)?;
    problems.extend(layer_problems);
    warnings.extend(layer_warnings);
    // A package sits only in suites of the distribution its version was built for; the
    // keyring package (keys, no build) sits in every suite.
    let keyring = crate::repo::keyring::package_name(&repository.config)?;
    for (suite, listed) in &suites {
        let expected =
            repo_suites::parse(&repository.config, suite).map(|parsed| parsed.distribution);
        for package in listed
            .iter()
            .filter(|package| package.identity.package != keyring)
        {
            let built_for = repo_suites::distribution_of(&package.identity.version);
            if expected.is_some_and(|expected| expected != built_for) {
                problems.push(format!(
                    "dists/{suite}: lists {} {}, a build for {}",
                    package.identity.package,
                    package.identity.version,
                    built_for.map_or("the host".to_string(), |built| built.to_string())
                ));
            }
        }
    }
    let keys = crate::repo::sign::KeySet::load(root, &repository.config)?;
    let pending = state::pending_publications(&connection)?;
    let all_suites = repo_suites::all_suites(&repository.config, &connection)?;
    for suite in &all_suites {
        let stage = &suite.name();
        if pending.contains(stage) {
            // Its files lag behind the state by design until it is published.
            problems.push(format!(
                "dists/{stage}: publication pending (a command was interrupted after saving \
                 the state; the next writer, or `debstage repo publish`, publishes it)"
            ));
            continue;
        }
        problems.extend(release_file_problems(root, stage));
        if let Ok(text) = std::fs::read_to_string(root.join("dists").join(stage).join("InRelease"))
        {
            problems.extend(keys.in_release_problems(stage, &text));
        }
        let listed = suites.get(stage).map(Vec::as_slice).unwrap_or_default();
        problems.extend(suite_problems(
            root,
            stage,
            &repository.config.architectures,
            listed,
        )?);
    }
    let (key_problems, key_warnings) = keys.expiry_notes(crate::repo::sign::keys::EXPIRY_WARNING);
    problems.extend(key_problems);
    warnings.extend(key_warnings);
    for warning in &warnings {
        reporter.warn(warning);
    }
    report(
        root,
        all_suites.len(),
        packages.len(),
        &problems,
        &warnings,
        reporter,
    )
}

/// Pool files whose size or SHA256 differs from the record, or that cannot be read. A
/// file the stamps vouch for is not read (unless `full`); the files found whole are
/// stamped for the next verify.
fn pool_file_problems(
    root: &Path,
    packages: &[PackageRecord],
    full: bool,
    reporter: &Reporter,
) -> Vec<String> {
    let seen = seen::Seen::load(root);
    let bar = reporter.progress(packages.len() as u64, "verifying");
    let checked: Vec<Result<(String, seen::Stamp), String>> = packages
        .par_iter()
        .map(|package| {
            bar.inc(1);
            let filename = &package.filename;
            let path = root.join(filename);
            // The stamp is taken before the bytes are read: a file changed in between
            // gets another change time, so the next verify reads it again.
            let metadata = std::fs::metadata(&path)
                .map_err(|error| format!("{filename}: cannot be read: {error}"))?;
            if metadata.len() != package.digests.size {
                return Err(format!(
                    "{filename}: {} bytes, recorded {}",
                    metadata.len(),
                    package.digests.size
                ));
            }
            let stamp = seen::Stamp::of(&metadata, &package.digests.sha256);
            if !full && seen.vouches_for(filename, &metadata, &package.digests.sha256) {
                return Ok((filename.clone(), stamp));
            }
            match pool::sha256_of(&path) {
                Err(error) => Err(format!("{filename}: cannot be read: {error}")),
                Ok((size, _)) if size != package.digests.size => Err(format!(
                    "{filename}: {size} bytes, recorded {}",
                    package.digests.size
                )),
                Ok((_, sha256)) if sha256 != package.digests.sha256 => Err(format!(
                    "{filename}: sha256 {sha256}, recorded {}",
                    package.digests.sha256
                )),
                Ok(_) => Ok((filename.clone(), stamp)),
            }
        })
        .collect();
    bar.finish_and_clear();
    let (whole, problems): (Vec<_>, Vec<_>) = checked.into_iter().partition(Result::is_ok);
    seen.store(whole.into_iter().filter_map(Result::ok).collect());
    let mut problems: Vec<String> = problems.into_iter().filter_map(Result::err).collect();
    problems.sort();
    problems
}

/// What the published files of one suite get wrong: Packages against the listing of the
/// state, Release against the Packages files.
fn suite_problems(
    root: &Path,
    stage: &str,
    architectures: &[String],
    listed: &[&PackageRecord],
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let release_path = root.join("dists").join(stage).join("Release");
    let release = match std::fs::read_to_string(&release_path) {
        Ok(text) => Some(text),
        Err(error) => {
            problems.push(format!(
                "{}: cannot be read: {error}",
                release_path.display()
            ));
            None
        }
    };
    for architecture in architectures {
        let name = format!("{COMPONENT}/binary-{architecture}/Packages");
        let path = root.join("dists").join(stage).join(&name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                problems.push(format!("{}: cannot be read: {error}", path.display()));
                continue;
            }
        };
        let published: BTreeSet<IndexLine> = match parse_packages(&text) {
            Ok(lines) => lines.into_iter().collect(),
            Err(error) => {
                problems.push(format!("dists/{stage}/{name}: {error:#}"));
                continue;
            }
        };
        let expected: BTreeSet<IndexLine> = listed
            .iter()
            .filter(|package| {
                package.identity.architecture == *architecture
                    || package.identity.architecture == "all"
            })
            .map(|package| IndexLine::of_record(package))
            .collect();
        for line in expected.difference(&published) {
            problems.push(format!(
                "dists/{stage}/{name}: does not list {}, which the state lists",
                line.describe()
            ));
        }
        for line in published.difference(&expected) {
            problems.push(format!(
                "dists/{stage}/{name}: lists {}, which the state does not (or with other \
                 size or sha256)",
                line.describe()
            ));
        }
        if let Some(release) = &release {
            let (size, sha256) = pool::sha256_of(&path)
                .with_context(|| format!("{}: cannot be read", path.display()))?;
            match release_entry(release, &name) {
                Some((listed_size, listed_sha256))
                    if listed_size == size && listed_sha256 == sha256 => {}
                Some(_) => problems.push(format!(
                    "dists/{stage}/Release: the SHA256 or size of {name} does not match the file"
                )),
                None => problems.push(format!(
                    "dists/{stage}/Release: has no SHA256 line for {name}"
                )),
            }
        }
    }
    Ok(problems)
}

/// Whether `InRelease` signs the very text of `Release` (`Release.gpg` is checked by
/// gpgv in the tests; a publication renames the three one after the other).
fn release_file_problems(root: &Path, stage: &str) -> Vec<String> {
    let directory = root.join("dists").join(stage);
    let read = |name: &str| std::fs::read_to_string(directory.join(name));
    match (read("Release"), read("InRelease"), read("Release.gpg")) {
        (Ok(release), Ok(in_release), Ok(_)) => match cleartext(&in_release) {
            Some(text) if text.trim_end_matches('\n') == release.trim_end_matches('\n') => {
                Vec::new()
            }
            _ => vec![format!(
                "dists/{stage}/InRelease: does not sign the text of dists/{stage}/Release"
            )],
        },
        (release, in_release, release_gpg) => [
            ("Release", release.err()),
            ("InRelease", in_release.err()),
            ("Release.gpg", release_gpg.err()),
        ]
        .into_iter()
        .filter_map(|(name, error)| {
            error.map(|error| format!("dists/{stage}/{name}: cannot be read: {error}"))
        })
        .collect(),
    }
}

/// The signed text of a clearsigned message (RFC 4880 section 7), dash-escaping undone.
fn cleartext(message: &str) -> Option<String> {
    let rest = message.strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----\n")?;
    // Armor headers (Hash: ...) end at the first empty line.
    let (_, body) = rest.split_once("\n\n")?;
    let (text, _) = body.split_once("\n-----BEGIN PGP SIGNATURE-----")?;
    Some(
        text.lines()
            .map(|line| line.strip_prefix("- ").unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Prints the result: a line of success, or the problems as the command's error.
fn report(
    root: &Path,
    suite_count: usize,
    packages: usize,
    problems: &[String],
    warnings: &[String],
    reporter: &Reporter,
) -> Result<()> {
    let document = json!({
        "ok": problems.is_empty(),
        "package_count": packages,
        "suite_count": suite_count,
        "problems": problems,
        "warnings": warnings,
    });
    if problems.is_empty() {
        let text = format!("ok: {packages} package(s), {suite_count} suite(s) match the state\n");
        reporter.data(text, &document)?;
        return Ok(());
    }
    // The problems are the error's text; JSON readers also get them on stdout.
    reporter.data("", &document)?;
    let shown: Vec<String> = problems
        .iter()
        .take(50)
        .map(|problem| format!("  {problem}"))
        .collect();
    let more = if problems.len() > shown.len() {
        format!("\n  ... and {} more", problems.len() - shown.len())
    } else {
        String::new()
    };
    bail!(
        "repo verify: {} problem(s) found in {}:\n{}{more}",
        problems.len(),
        root.display(),
        shown.join("\n")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_release_and_packages() {
        let release = "Origin: x\nMD5Sum:\n 00 1 main/binary-amd64/Packages\nSHA256:\n \
                       abc 12 main/binary-amd64/Packages\n def 3 main/binary-amd64/Packages.gz\n";
        assert_eq!(
            release_entry(release, "main/binary-amd64/Packages"),
            Some((12, "abc".to_string()))
        );
        assert_eq!(release_entry(release, "main/binary-arm64/Packages"), None);
        let packages = "Package: a\nVersion: 1\nArchitecture: all\nDescription: x\n more\n\
                        Filename: pool/a.deb\nSize: 5\nSHA256: ff\n\nPackage: b\nVersion: 2\n";
        let lines = parse_packages(packages).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].filename, "pool/a.deb");
        assert_eq!(lines[1].package, "b");
    }

    #[test]
    fn reads_the_text_of_a_clearsigned_message() {
        let message = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: x\n\
                       - -----not armor\nSuite: t\n-----BEGIN PGP SIGNATURE-----\nabc\n";
        assert_eq!(
            cleartext(message).unwrap(),
            "Origin: x\n-----not armor\nSuite: t"
        );
        assert_eq!(cleartext("Origin: x\n"), None);
    }
}
