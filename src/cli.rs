//! Command-line definitions (clap derive) and nothing else.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::deb::compress::Compression;
pub use crate::report::Format;
use clap::{Args, Parser, Subcommand};

/// Build versioned Debian packages of an application and carry them through release stages.
#[derive(Debug, Parser)]
#[command(name = "debstage", version, about)]
pub struct Cli {
    /// Print nothing but data and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Output format of listings and results.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The repository directory (repository commands).
    #[arg(long, global = true, env = "DEBSTAGE_REPO", default_value = "repo")]
    pub repo: PathBuf,
    /// How long a repository command waits for another writer before giving up (for
    /// example 30s, 5m).
    #[arg(long, global = true, value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the payload and stage packages of an application.
    Build(BuildOptions),
    /// Write a commented debstage.toml and an example activation hook into a directory.
    Init(InitOptions),
    /// Manage a local apt repository with one suite per stage.
    Repo(RepoOptions),
}

/// Options of `debstage build`.
#[derive(Debug, Clone, Args)]
pub struct BuildOptions {
    /// The manifest to read.
    #[arg(long, default_value = "debstage.toml")]
    pub manifest: PathBuf,
    /// Directory that receives the packages and the build manifest.
    #[arg(long, default_value = "target/debstage")]
    pub out: PathBuf,
    /// Overrides the upstream version of the manifest.
    #[arg(long)]
    pub version: Option<String>,
    /// Overrides the Debian revision of the manifest.
    #[arg(long)]
    pub revision: Option<String>,
    /// Compressor of the package members.
    #[arg(long, value_enum, default_value_t = Compression::Xz)]
    pub compress: Compression,
    /// Compression level (xz 0-9, gzip 1-9, zstd 1-19); the compressor's default if unset.
    #[arg(long)]
    pub level: Option<u32>,
    /// Build inside a cached root of this distribution (a codename such as bookworm or
    /// trixie), or `all` for each of the manifest's `[build] targets`; without it the
    /// build uses the host.
    #[arg(long, value_name = "CODENAME")]
    pub target: Option<String>,
}

impl From<BuildOptions> for crate::build::request::BuildRequest {
    fn from(options: BuildOptions) -> Self {
        crate::build::request::BuildRequest {
            manifest: options.manifest,
            out: options.out,
            version: options.version,
            revision: options.revision,
            compress: options.compress,
            level: options.level,
            target: options.target,
        }
    }
}

/// Options of `debstage init`.
#[derive(Debug, Clone, Args)]
pub struct InitOptions {
    /// The application directory that receives debstage.toml.
    #[arg(default_value = ".")]
    pub directory: PathBuf,
    /// The application's package name (defaults to the directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace an existing debstage.toml.
    #[arg(long)]
    pub force: bool,
}

impl From<InitOptions> for crate::build::request::InitRequest {
    fn from(options: InitOptions) -> Self {
        crate::build::request::InitRequest {
            directory: options.directory,
            name: options.name,
            force: options.force,
        }
    }
}

/// A `debstage repo` command (`--repo` and `--lock-timeout` are global options).
#[derive(Debug, Args)]
pub struct RepoOptions {
    #[command(subcommand)]
    pub command: RepoCommand,
}

/// The `debstage repo` commands.
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a repository: configuration, state database, signing key.
    Init {
        /// Stages in promotion order; each becomes a suite.
        #[arg(long, value_delimiter = ',', default_value = "test,staging,production")]
        stages: Vec<String>,
        /// Origin field of the Release files, and the name of the exported key.
        #[arg(long, default_value = "debstage")]
        origin: String,
        /// Label field of the Release files.
        #[arg(long)]
        label: Option<String>,
        /// Architectures the suites serve.
        #[arg(long = "arch", value_delimiter = ',', default_value = "amd64,arm64")]
        architectures: Vec<String>,
        /// An armored OpenPGP secret key to sign with, instead of a generated one.
        #[arg(long, conflicts_with = "gpg_key")]
        key: Option<PathBuf>,
        /// A key id in the local gpg keyring to sign with (gpg does the signing).
        #[arg(long)]
        gpg_key: Option<String>,
        /// How long a generated key is valid: a duration (730d) or `never`.
        #[arg(long, default_value = "730d", value_parser = parse_key_lifetime)]
        expires: KeyLifetime,
    },
    /// The signing keys: list, add, retire, extend, export.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Add packages (files or a build manifest) to a stage's suite.
    Add {
        /// The stage to add to (the first stage when omitted), then the .deb files.
        #[arg(value_name = "[STAGE] FILES")]
        arguments: Vec<String>,
        /// A build manifest written by `debstage build` instead of files.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Allow adding to a stage after the first (the history records it as a skip).
        #[arg(long)]
        skip: bool,
    },
    /// Promote an application version to the next stage (or to STAGE).
    Promote {
        /// The application.
        app: String,
        /// The version to promote (upstream version, or version-revision).
        // The id differs from the name: `version` is clap's own `--version` flag.
        #[arg(id = "app_version", value_name = "VERSION")]
        version: String,
        /// The stage to promote to (the stage after the one the version is in, when
        /// omitted).
        #[arg(value_name = "STAGE")]
        stage: Option<String>,
        /// The same as the STAGE argument.
        #[arg(long, value_name = "STAGE", conflicts_with = "stage")]
        to: Option<String>,
        /// Allow promoting past stages the version is not in (history records a skip).
        #[arg(long)]
        skip: bool,
        /// Only the build for this distribution (codename: bookworm, trixie, ...); without
        /// it a release (1.0-1) is promoted for every distribution that has it.
        #[arg(long = "dist", value_name = "CODENAME")]
        dist: Option<String>,
    },
    /// Put a stage back to the version it had before (or to --to).
    Rollback {
        /// The application.
        app: String,
        /// The stage to roll back.
        stage: String,
        /// A version the stage had at some time.
        #[arg(long)]
        to: Option<String>,
        /// Only this distribution's suite of the stage (codename); without it every
        /// distribution's suite of the stage goes back.
        #[arg(long = "dist", value_name = "CODENAME")]
        dist: Option<String>,
    },
    /// List the packages of the repository or of one stage.
    List {
        /// Only this stage's suite.
        stage: Option<String>,
    },
    /// Show which version of an application is in which stage.
    Show {
        /// The application.
        app: String,
    },
    /// Show who promoted what, when, from which version to which.
    History {
        /// Only this application.
        app: Option<String>,
    },
    /// Show which releases differ between two stages (or a stage and a version), with the
    /// commits between them and the packages whose Depends changed.
    Diff {
        /// The first side: a stage, or a version in the pool.
        from: String,
        /// The second side: a stage, or a version in the pool.
        to: String,
        /// Only this application.
        #[arg(long)]
        app: Option<String>,
        /// The git repository the releases were built from: list the commits between
        /// them (`git log`), not only the two commits.
        #[arg(long, value_name = "DIR")]
        git: Option<std::path::PathBuf>,
    },
    /// Remove an application version from the repository.
    Remove {
        /// The application.
        app: String,
        /// The version to remove.
        #[arg(id = "app_version", value_name = "VERSION")]
        version: String,
        /// Only from this stage's suite.
        stage: Option<String>,
    },
    /// Remove old versions that no stage points to.
    Gc {
        /// How many versions to keep per stage and application.
        #[arg(long, default_value_t = 5)]
        keep: usize,
        /// Also forget the bytes of removed versions, so that their names and versions
        /// may come back with other bytes (by default they stay reserved).
        #[arg(long)]
        forget: bool,
    },
    /// Check pool files against recorded hashes and indexes against the database.
    Verify {
        /// Instead: check what the state records of this publish target against the
        /// store's listing.
        #[arg(long, value_name = "NAME", conflicts_with = "full")]
        target: Option<String>,
        /// Read every pool file again, also those unchanged (size, times, inode) since
        /// a verify found them whole.
        #[arg(long)]
        full: bool,
    },
    /// Write the indexes and signatures of every suite again.
    Publish {
        /// Also copy the published tree to this target of `[[publish.targets]]`.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
    },
    /// Print the public signing keys (armored, or --binary: the keyring Signed-By names).
    ExportKey {
        /// Print the binary keyring that `Signed-By` names
        /// (/usr/share/keyrings/<origin>-archive-keyring.gpg).
        #[arg(long)]
        binary: bool,
    },
    /// Print what a server of this stage needs: how to install the key, and the deb822
    /// source (the apt pin comes with the stage package itself).
    Sources {
        /// The stage.
        stage: String,
        /// The URL the server reaches the repository at.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The application the server runs (named in the install command; every
        /// application of the stage when omitted).
        #[arg(long)]
        app: Option<String>,
        /// The distribution of the servers (codename): its suite of the stage
        /// (`bookworm-production`); without it, the suite of host builds.
        #[arg(long = "dist", value_name = "CODENAME")]
        dist: Option<String>,
    },
    /// Serve the published tree over HTTP.
    Serve {
        /// Address to listen on (loopback by default).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
    },
}

/// The longest duration accepted: waits longer than a year are a typo, and a bound keeps
/// every later `Instant + Duration` from overflowing.
/// Reads a duration flag (`--lock-timeout 90s`) with the grammar of every duration.
/// How long a new key is valid: `None` for ever.
#[derive(Debug, Clone, Copy)]
pub struct KeyLifetime(pub Option<Duration>);

/// The longest key lifetime a flag takes (ten years).
const LONGEST_KEY_LIFETIME: Duration = Duration::from_secs(3660 * 86_400);

fn parse_key_lifetime(text: &str) -> Result<KeyLifetime, String> {
    if text == "never" {
        return Ok(KeyLifetime(None));
    }
    crate::units::parse_duration(text, LONGEST_KEY_LIFETIME)
        .map(|lifetime| KeyLifetime(Some(lifetime)))
        .map_err(|reason| format!("{reason}, or never"))
}

/// `debstage repo key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys: fingerprint, algorithm, created, expires, state.
    List,
    /// Add a signing key (generated, or imported): from now on every Release is signed by
    /// it too, and <origin>.gpg holds it.
    Add {
        /// An armored OpenPGP secret key to import instead of generating one.
        #[arg(long, value_name = "FILE", conflicts_with = "gpg_key")]
        import: Option<PathBuf>,
        /// A key id in the local gpg keyring (or on a token) that gpg signs with.
        #[arg(long)]
        gpg_key: Option<String>,
        /// How long a generated key is valid: a duration (730d) or `never`.
        #[arg(long, default_value = "730d", value_parser = parse_key_lifetime)]
        expires: KeyLifetime,
    },
    /// Retire a key: it signs nothing more, and <origin>.gpg drops it.
    Retire {
        /// The key's fingerprint (or its last 16 hex digits, the long key id).
        fingerprint: String,
    },
    /// Make a key valid for longer (clients need the refreshed public key).
    Extend {
        /// The key's fingerprint (or its last 16 hex digits).
        fingerprint: String,
        /// How long from now the key is valid.
        #[arg(long, default_value = "730d", value_parser = parse_key_lifetime)]
        expires: KeyLifetime,
    },
    /// Print the public keys clients trust (armored), or with --secret the secret keys the
    /// repository signs with, for a second writer's `repo init --key`.
    Export {
        /// Only this key (fingerprint or its last 16 hex digits).
        fingerprint: Option<String>,
        /// Print the secret keys: keep them in a secret store, never in a repository.
        #[arg(long)]
        secret: bool,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::units::parse_duration(text, crate::units::LONGEST_DURATION)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn duration_flags_use_the_one_grammar() {
        assert_eq!(
            super::parse_duration("90").ok(),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            super::parse_duration("1d").ok(),
            Some(std::time::Duration::from_secs(86_400))
        );
        assert!(super::parse_duration("5x").is_err());
        assert!(super::parse_duration("367d").is_err());
    }
}
