//! The `<origin>-archive-keyring` package: every key that is not retired, in
//! `/usr/share/keyrings/<origin>-archive-keyring.gpg` (the binary keyring apt's
//! `Signed-By` reads), listed in every suite from `repo init` on, so that a new key
//! reaches the servers through apt itself, as `debian-archive-keyring` does for Debian.
//!
//! Its version is the key set's version, kept in the state (so writers sharing a
//! target's state agree on it) and raised at every change of the keys. Its bytes depend
//! on the keys and that version alone (the newest key's creation time dates every
//! entry): two writers with the same keys write the same package.
//!
//! It is not an application: it is never promoted or rolled back (every suite lists the
//! same version), and the listings show it as the keyring ([`Shown`]).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use handlebars::Handlebars;
use rusqlite::Connection;
use serde::Serialize;

use crate::deb::compress::{self, Compression, Settings};
use crate::deb::{self, ControlMember, Entry, PackageSpec};
use crate::debian::control::{self, Control};
use crate::debian::digests::Digests;
use crate::naming::package_id::PackageId;
use crate::naming::rules::shell_quote;
use crate::repo::config::{KeyState, RepoConfig};
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
    /// The suites that did not list that version before, in the repository's order.
    pub(crate) newly_listed: Vec<String>,
}

/// The keyring package's name for the repository of `config`.
pub(crate) fn package_name(config: &RepoConfig) -> Result<String> {
    crate::naming::archive_keyring_package(&config.origin)
        .map_err(|reason| anyhow::anyhow!("origin: {:?} {reason}", config.origin))
}

/// Refuses `app` when it is the keyring package: it is no application, and `command`
/// (promote, rollback, remove, show, diff --app) does not take it.
pub(crate) fn refuse_as_application(config: &RepoConfig, app: &str, command: &str) -> Result<()> {
    if package_name(config)? == app {
        anyhow::bail!(
            "{app} is the repository's keyring package, not an application: every suite \
             lists its one version, which `debstage repo key add|retire|extend` raises; \
             `debstage repo {command}` does not take it (`debstage repo key list` shows the keys)"
        );
    }
    Ok(())
}

/// The version the keyring package has now: the state's. A repository from before the
/// state kept it has the configuration's old `keyring_version` or the highest version of
/// the package in the pool, whichever is higher (1 for keys that never changed).
pub(crate) fn version(connection: &Connection, config: &RepoConfig) -> Result<u64> {
    if let Some(version) = state::keyring_version(connection)? {
        return Ok(version);
    }
    let package = package_name(config)?;
    let in_pool = state::packages_of_app(connection, &package)?
        .iter()
        .filter_map(|record| record.identity.version.parse::<u64>().ok())
        .max()
        .unwrap_or(1);
    Ok(in_pool.max(config.signing.legacy_keyring_version()))
}

/// The keyring as the listings show it (`repo list`, `repo diff`, the dashboard): the
/// package, the version every suite lists, and the keys it installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Shown {
    /// `<origin>-archive-keyring`.
    pub(crate) package: String,
    /// The version the suites list (the state's keyring version).
    pub(crate) version: String,
    /// The fingerprints of the keys it installs (every key not retired), oldest first.
    pub(crate) fingerprints: Vec<String>,
}

impl Shown {
    /// The keyring of the repository at `root` as its state stands.
    pub(crate) fn of(root: &Path, config: &RepoConfig, connection: &Connection) -> Result<Shown> {
        let fingerprints = crate::repo::sign::keys::records(root, &config.signing)?
            .into_iter()
            .filter(|record| record.state != KeyState::Retired)
            .map(|record| record.fingerprint.to_uppercase())
            .collect();
        Ok(Shown {
            package: package_name(config)?,
            version: version(connection, config)?.to_string(),
            fingerprints,
        })
    }

    /// The line the text listings end with: `keyring <package> <version>: keys <fingerprint>, ...`.
    pub(crate) fn line(&self) -> String {
        format!(
            "keyring {} {}: keys {}\n",
            self.package,
            self.version,
            self.fingerprints.join(", ")
        )
    }
}

/// Writes the keyring package of `config`'s keys, version `version`, into `directory`.
pub(crate) fn write(
    config: &RepoConfig,
    keys: &KeySet,
    version: u64,
    directory: &Path,
) -> Result<deb::WrittenPackage> {
    let package = package_name(config)?;
    let version = version.to_string();
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
    let spec = PackageSpec::new(fields, entries, scripts(&package, &version)?, gzip, mtime);
    deb::write_package(&spec, directory)
}

/// The maintainer scripts, rendered from `templates/keyring-*.hbs`: the installed
/// version as a node_exporter textfile metric (`debstage_keyring_version`), written by
/// `postinst`, removed by `postrm`.
fn scripts(package: &str, version: &str) -> Result<Vec<ControlMember>> {
    let mut registry = Handlebars::new();
    // Scripts are not HTML, and a missing value must be an error, never an empty string.
    registry.register_escape_fn(handlebars::no_escape);
    registry.set_strict_mode(true);
    // The name passed the naming contract's check and the version is a number; both are
    // quoted all the same.
    let context = serde_json::json!({
        "package": package,
        "q_package": shell_quote(package),
        "q_version": shell_quote(version),
        "q_metrics_file": shell_quote(&crate::naming::archive_keyring_metrics_file(package)),
    });
    [
        (
            "postinst",
            include_str!("../../templates/keyring-postinst.hbs"),
        ),
        ("postrm", include_str!("../../templates/keyring-postrm.hbs")),
    ]
    .into_iter()
    .map(|(name, template)| {
        Ok(ControlMember {
            name: name.to_string(),
            text: registry
                .render_template(template, &context)
                .with_context(|| format!("templates/keyring-{name}.hbs cannot be rendered"))?,
        })
    })
    .collect()
}

/// Lists the keyring package of the current version in every suite that lacks it, and
/// records its version in the state when the state has none (a repository from before
/// either); `None` when nothing was missing. Called by every session before it
/// publishes, so a new suite (a distribution's first build) and a repository made before
/// the keyring was listed from `repo init` on get it at their next publication.
pub(crate) fn ensure(
    root: &Path,
    config: &RepoConfig,
    connection: &Connection,
) -> Result<Option<Refreshed>> {
    let version = version(connection, config)?;
    let package = package_name(config)?;
    let recorded = state::keyring_version(connection)? == Some(version);
    let whole = match state::find_package(connection, &package, &version.to_string(), "all")? {
        None => false,
        Some(record) => {
            let listed = state::suites_of(connection, record.id)?;
            let mut whole = true;
            for suite in suites::all_suites(config, connection)? {
                let name = suite.name();
                whole &= listed.contains(&name)
                    && state::current(connection, &package, &name)?.as_deref()
                        == Some(record.identity.version.as_str());
            }
            whole
        }
    };
    if recorded && whole {
        return Ok(None);
    }
    if whole {
        state::record_keyring_version(connection, version)?;
        return Ok(None);
    }
    let keys = KeySet::load(root, config)?;
    refresh(root, config, &keys, connection, version).map(Some)
}

/// Puts the keyring package of the current keys, version `version`, into every suite of
/// the state in place of any other version of it (the pool file written, the row and the
/// version recorded, the suites owing a publication). Called by every change of the keys
/// (with the version raised) and by [`ensure`].
pub(crate) fn refresh(
    root: &Path,
    config: &RepoConfig,
    keys: &KeySet,
    connection: &Connection,
    version: u64,
) -> Result<Refreshed> {
    let package = package_name(config)?;
    let number = version;
    let version = version.to_string();
    let mut existing = state::find_package(connection, &package, &version, "all")?;
    let mut staged = None;
    if existing.is_none() {
        let incoming = root.join(pool::INCOMING);
        fs_err::create_dir_all(&incoming)?;
        let written = write(config, keys, number, &incoming)?;
        staged = Some(incoming.join(&written.file));
    }
    // Callers hold the connection shared (a session publishing): no transaction is open
    // on it here, so the unchecked one is the only one.
    let transaction = connection.unchecked_transaction()?;
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
        let bytes = fs_err::read(path)?;
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
    let mut newly_listed = Vec::new();
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
        newly_listed.push(name);
    }
    state::record_keyring_version(&transaction, number)?;
    transaction.commit()?;
    if let Some(path) = &staged {
        pool::place(root, path, &record.filename)?;
    }
    Ok(Refreshed {
        package,
        version,
        newly_listed,
    })
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
                let written = write(&config, &keys, 1, &out).expect("written");
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
