//! Builds of `examples/hello` that the scenarios install: good versions, and versions
//! whose activation hook fails, whose service exits at start, or whose health check
//! fails, and one whose environment file holds what a shell would read otherwise. Each scenario makes its own, in its own temp dir. Every copy settles for 1 s and
//! gives its health check 2 s, so that failures show quickly.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::BuildManifest;

use crate::support::{build, copy_tree, project_root};

/// A scratch directory with a copy of `examples/hello` and the packages built from it.
pub struct Builds {
    temp: tempfile::TempDir,
    /// Where every build writes its packages and build manifests.
    pub out: PathBuf,
}

/// One build: its manifest and where its files are.
pub struct Built {
    /// What `debstage build` recorded.
    pub manifest: BuildManifest,
    /// The build manifest file (`repo add --manifest` takes it).
    pub manifest_file: PathBuf,
    out: PathBuf,
}

impl Built {
    /// The payload package file.
    pub fn payload(&self) -> PathBuf {
        self.file_of(|package| package.role == "payload")
    }

    /// The stage package file of `stage`.
    pub fn stage(&self, stage: &str) -> PathBuf {
        self.file_of(|package| package.role == "stage" && package.stage.as_deref() == Some(stage))
    }

    fn file_of(&self, wanted: impl Fn(&crate::support::BuiltPackage) -> bool) -> PathBuf {
        let package = self
            .manifest
            .packages
            .iter()
            .find(|package| wanted(package))
            .unwrap_or_else(|| panic!("no such package in {}", self.manifest_file.display()));
        self.out.join(&package.file)
    }
}

/// The release's `etc/production.env` of [`Builds::environment`]: values with spaces,
/// quotes, backslashes, `$`, backticks, `#` and a newline, which systemd's
/// `EnvironmentFile=` reads without expansion or command substitution (a shell's `. FILE`
/// would run the commands).
pub const RELEASE_ENVIRONMENT: &str = r##"# Defaults of the production stage; local values go in /etc/hello/production.env.
GREETING=hello world
QUOTED="a \"quoted\" value with $HOME, `id -u` and \\ one backslash \n"
SINGLE='it''s $(id -u) # no comment'
DOLLAR=$PATH
BACKTICK=`touch /var/tmp/hello-backtick-ran`
COMMAND=$(touch /var/tmp/hello-command-ran)
HASH=one # two
ESCAPED=a\ b\\c\$d
TRAILING=blanks after   
  INDENTED = around the equals sign
JOINED=first \
second
MULTI="line one
line two"
OVERRIDDEN=from the release
"##;

impl Builds {
    /// A scratch directory with four copies of the example: as shipped, with an
    /// activation hook that fails, with a service that exits 1 at start, and with a health
    /// check that fails.
    pub fn new() -> Builds {
        let temp = tempfile::tempdir().expect("temporary directory");
        let example = project_root().join("examples/hello");
        for copy in [
            "hello",
            "hello-broken",
            "hello-crashing",
            "hello-unhealthy",
            "hello-environment",
        ] {
            let directory = temp.path().join(copy);
            copy_tree(&example, &directory);
            let manifest = directory.join("debstage.toml");
            let text = fs::read_to_string(&manifest)
                .unwrap_or_else(|error| panic!("{}: {error}", manifest.display()));
            let quick = text
                .replace(
                    "health = { command = \"bin/healthcheck\", timeout = 10 }",
                    "health = { command = \"bin/healthcheck\", timeout = 2 }",
                )
                .replace("settle = \"5s\"", "settle = \"1s\"");
            assert!(
                quick.contains("timeout = 2 }") && quick.contains("settle = \"1s\""),
                "examples/hello/debstage.toml changed its health or settle line:\n{text}"
            );
            fs::write(&manifest, quick)
                .unwrap_or_else(|error| panic!("{}: {error}", manifest.display()));
        }
        let script = |path: &str, text: &str| {
            let file = temp.path().join(path);
            fs::write(&file, text).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
            fs::set_permissions(&file, fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        };
        script(
            "hello-broken/app/hooks/activate",
            "#!/bin/sh\necho \"migration of $DEBSTAGE_VERSION failed\" >&2\nexit 1\n",
        );
        script(
            "hello-crashing/app/bin/hello",
            "#!/bin/sh\necho \"hello: cannot read /etc/hello/$DEBSTAGE_STAGE.conf\" >&2\nexit 1\n",
        );
        script(
            "hello-unhealthy/app/bin/healthcheck",
            "#!/bin/sh\necho \"checking $DEBSTAGE_VERSION\"\n\
             printf 'bytes: \\377\\001\\033[31m red\\r\\n' >&2\n\
             echo 'database \"orders\" unreachable:\tcode 42 \\ retry later' >&2\nexit 1\n",
        );
        // The hook and the health check write the environment they were given where the
        // test reads it, to compare it with the unit's.
        script(
            "hello-environment/app/hooks/activate",
            "#!/bin/sh\nset -e\ncat /proc/self/environ >/var/tmp/hello-hook.environ\n",
        );
        script(
            "hello-environment/app/bin/healthcheck",
            "#!/bin/sh\nset -e\ncat /proc/self/environ >/var/tmp/hello-health.environ\n\
             test -x \"$(dirname \"$0\")/hello\"\n",
        );
        let environment = temp.path().join("hello-environment/app/etc/production.env");
        fs::write(&environment, RELEASE_ENVIRONMENT)
            .unwrap_or_else(|error| panic!("{}: {error}", environment.display()));
        let out = temp.path().join("out");
        Builds { temp, out }
    }

    /// Builds a version whose service exits 1 as soon as it starts (its health check,
    /// the example's, passes).
    pub fn crashing(&self, version: &str, revision: &str) -> Built {
        self.build_from(&self.temp.path().join("hello-crashing"), version, revision)
    }

    /// Builds a version whose service runs but whose health check fails, saying why with
    /// quotes, a tab, a backslash, control characters and a byte that is not UTF-8 (text
    /// the facts file must escape or drop).
    pub fn unhealthy(&self, version: &str, revision: &str) -> Built {
        self.build_from(&self.temp.path().join("hello-unhealthy"), version, revision)
    }

    /// Builds a version whose `etc/production.env` is [`RELEASE_ENVIRONMENT`], and whose
    /// activation hook and health check write their environment to
    /// `/var/tmp/hello-hook.environ` and `/var/tmp/hello-health.environ`.
    pub fn environment(&self, version: &str, revision: &str) -> Built {
        self.build_from(
            &self.temp.path().join("hello-environment"),
            version,
            revision,
        )
    }

    /// Builds a version whose activation hook works.
    pub fn good(&self, version: &str, revision: &str) -> Built {
        self.build_from(&self.temp.path().join("hello"), version, revision)
    }

    /// Builds a version whose activation hook works, for a distribution (`--target`):
    /// its versions carry the distribution's suffix (`1.0-1+deb12`).
    pub fn good_for(&self, version: &str, revision: &str, target: &str) -> Built {
        self.build_with(
            &self.temp.path().join("hello"),
            &[
                "--version",
                version,
                "--revision",
                revision,
                "--target",
                target,
            ],
        )
    }

    /// Builds a version whose activation hook exits 1.
    pub fn broken(&self, version: &str, revision: &str) -> Built {
        self.build_from(&self.temp.path().join("hello-broken"), version, revision)
    }

    fn build_from(&self, app: &Path, version: &str, revision: &str) -> Built {
        self.build_with(app, &["--version", version, "--revision", revision])
    }

    fn build_with(&self, app: &Path, arguments: &[&str]) -> Built {
        let version = arguments.get(1).copied().unwrap_or_default();
        let value = build(&app.join("debstage.toml"), &self.out, arguments);
        let manifest: BuildManifest = serde_json::from_value(value)
            .unwrap_or_else(|error| panic!("build manifest of hello {version}: {error}"));
        let manifest_file = self.out.join(manifest.file_name());
        assert!(
            manifest_file.is_file(),
            "{} missing",
            manifest_file.display()
        );
        Built {
            manifest,
            manifest_file,
            out: self.out.clone(),
        }
    }
}
