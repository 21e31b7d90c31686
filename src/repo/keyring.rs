//! The `<origin>-archive-keyring` package: every key that is not retired, in
//! `/usr/share/keyrings/<origin>-archive-keyring.gpg` (the binary keyring apt's
//! `Signed-By` reads), listed in every suite, so that a new key reaches the servers
//! through apt itself, as `debian-archive-keyring` does for Debian.
//!
//! Its version is the key set's version (`keyring_version`), raised at every change of
//! the keys. Its bytes depend on the keys alone (the newest key's creation time dates
//! every entry): two writers with the same keys write the same package.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::deb::compress::{self, Compression, Settings};
use crate::deb::{self, Entry, PackageSpec};
use crate::debian::control::{self, Control};
use crate::debian::digests::Digests;
use crate::naming::package_id::PackageId;
use crate::repo::config::RepoConfig;
use crate::repo::pool;
use crate::repo::sign::KeySet;
use crate::repo::state::{self, NewPackage, Role};
use crate::repo::suites;

/// Who the package names as its maintainer: the repository, which has no person's
/// address in its configuration.
const MAINTAINER: &str = "debstage repository keys <keys@debstage.invalid>";

/// What one refresh did: the package and version now in every suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refreshed {
    /// The package name.
    pub(crate) package: String,
    /// Its version.
    pub(crate) version: String,
}

/// Writes the keyring package of `config`'s keys (version `keyring_version`) into
/// `directory`.
pub(crate) fn write(
    config: &RepoConfig,
    keys: &KeySet,
    directory: &Path,
) -> Result<deb::WrittenPackage> {
    let package = crate::naming::archive_keyring_package(&config.origin)
        .map_err(|reason| anyhow::anyhow!("origin: {:?} {reason}", config.origin))?;
    let version = config.signing.keyring_version().to_string();
    let trusted = keys.trusted();
    let mtime = trusted
        .iter()
        .map(|key| key.facts.created)
        .max()
        .unwrap_or_default();
    let fingerprints: Vec<&str> = trusted
        .iter()
        .map(|key| key.facts.fingerprint.as_str())
        .collect();
    let gzip = Settings {
        compression: Compression::Gzip,
        level: Some(9),
        threads: 1,
    };
    // One fingerprint a line: lintian wants changelog lines of at most 80 characters.
    let listed: String = fingerprints
        .iter()
        .map(|fingerprint| format!("    {fingerprint}\n"))
        .collect();
    let changelog = format!(
        "{package} ({version}) stable; urgency=medium\n\n  * The keys that are not \
         retired:\n{listed}\n -- {MAINTAINER}  {}\n",
        crate::debian::changelog::changelog_date(mtime)
    );
    let copyright = format!(
        "The OpenPGP public keys of the {origin} apt repository, packaged by debstage.\n\n\
         Copyright (C) {} the owners of the {origin} repository.\n\
         The keys are given for anyone to use, copy and pass on.\n",
        crate::debian::changelog::changelog_year(mtime),
        origin = config.origin
    );
    let entries = vec![
        Entry::bytes(
            crate::naming::archive_keyring_path(&package).trim_start_matches('/'),
            0o644,
            keys.trusted_binary(),
        ),
        Entry::bytes(
            format!("usr/share/doc/{package}/copyright"),
            0o644,
            copyright,
        ),
        Entry::bytes(
            format!("usr/share/doc/{package}/changelog.gz"),
            0o644,
            compress::compress_bytes(changelog.as_bytes(), gzip)?,
        ),
    ];
    let mut fields = Control::new();
    fields.set("Package", package.as_str());
    fields.set("Version", version.as_str());
    fields.set("Architecture", "all");
    fields.set("Maintainer", MAINTAINER);
    fields.set("Multi-Arch", "foreign");
    fields.set("Section", "misc");
    fields.set("Priority", "optional");
    fields.set(
        "Description",
        control::description(
            &format!("OpenPGP keys of the {} apt repository", config.origin),
            &format!(
                "The keys that sign the repository's Release files, in {} for the Signed-By \
                 field of its apt source. A new key reaches servers with this package \
                 before it signs alone.",
                crate::naming::archive_keyring_path(&package)
            ),
        ),
    );
    let spec = PackageSpec::new(fields, entries, Vec::new(), gzip, mtime);
    deb::write_package(&spec, directory)
}

/// Puts the keyring package of the current keys into every suite of the state in place
/// of any other version of it (the pool file written, the row recorded, the suites owing
/// a publication). Called by every change of the keys.
pub(crate) fn refresh(
    root: &Path,
    config: &RepoConfig,
    keys: &KeySet,
    connection: &mut Connection,
) -> Result<Refreshed> {
    let package = crate::naming::archive_keyring_package(&config.origin)
        .map_err(|reason| anyhow::anyhow!("origin: {:?} {reason}", config.origin))?;
    let version = config.signing.keyring_version().to_string();
    let mut existing = state::find_package(connection, &package, &version, "all")?;
    let mut staged = None;
    if existing.is_none() {
        let incoming = root.join(pool::INCOMING);
        fs::create_dir_all(&incoming)
            .with_context(|| format!("{}: cannot be created", incoming.display()))?;
        let written = write(config, keys, &incoming)?;
        staged = Some(incoming.join(&written.file));
    }
    let transaction = connection.transaction()?;
    if let Some(path) = &staged {
        // As `repo add` does: the file is durable before its row is committed, and placed
        // after (an interrupted command's file is placed by the next session).
        pool::make_durable(root, &[path.as_path()])?;
        // Read back as `repo add` reads a package: the index carries what the file says.
        let read = fs::File::open(path)
            .map_err(anyhow::Error::from)
            .and_then(|mut file| {
                deb::read::read_and_check_from(&mut file, config.limits.unpack_limits()?)
                    .map_err(anyhow::Error::from)
            })
            .with_context(|| format!("{}: cannot be read back", path.display()))?;
        let bytes =
            fs::read(path).with_context(|| format!("{}: cannot be read", path.display()))?;
        let digests = Digests::of(&bytes);
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let filename = pool::pool_path(&package, &file_name);
        state::insert_package(
            &transaction,
            &NewPackage {
                app: &package,
                identity: &PackageId::new(&package, &version, "all"),
                upstream: &version,
                role: Role::Plain,
                stage: None,
                filename: &filename,
                digests: &digests,
                control: &read.text,
                added: crate::repo::clock::now(),
            },
        )?;
        existing = state::find_package(&transaction, &package, &version, "all")?;
    }
    let Some(record) = existing else {
        anyhow::bail!("{package} {version}: recorded but not found again");
    };
    let listed = state::suites_of(&transaction, record.id)?;
    for suite in suites::all_suites(config, &transaction)? {
        let name = suite.name();
        // The suite points to its version, as to an application's: `repo gc` keeps it.
        state::set_current(&transaction, &package, &name, &version)?;
        if listed.contains(&name) {
            continue;
        }
        state::unlist_name(&transaction, &name, &package)?;
        state::list(&transaction, &name, record.id)?;
        state::owe_publication(&transaction, &name)?;
    }
    transaction.commit()?;
    if let Some(path) = &staged {
        pool::place(root, path, &record.filename)?;
    }
    Ok(Refreshed { package, version })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::repo::sign::Signer;

    #[test]
    fn the_same_keys_give_the_same_bytes_and_the_name_follows_the_origin() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let root = directory.path();
        let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let signer = Signer::generate("Acme <apt@acme.example>", created, None).expect("key");
        fs::create_dir_all(root.join("private")).expect("private");
        signer
            .save_secret(&root.join("private/signing-key.asc"))
            .expect("saved");
        let config = RepoConfig {
            origin: "Acme_Apps".into(),
            ..crate::repo::config::tests::config()
        };
        let keys = KeySet::load(root, &config).expect("keys");
        let written: Vec<(deb::WrittenPackage, Vec<u8>)> = ["one", "two"]
            .iter()
            .map(|name| {
                let out = root.join(name);
                fs::create_dir_all(&out).expect("out");
                let written = write(&config, &keys, &out).expect("written");
                let bytes = fs::read(out.join(&written.file)).expect("read");
                (written, bytes)
            })
            .collect();
        assert_eq!(written[0].0.file, "acme-apps-archive-keyring_1_all.deb");
        assert_eq!(
            written[0].1, written[1].1,
            "two writes of the same keys differ"
        );
    }
}
