//! An apt of its own for tests: `apt-get` and `apt-cache` run against one repository
//! with state, cache, sources and keys under a directory of the test, nothing read from
//! the host's /etc/apt or /var/lib/apt.
//!
//! Shared by the integration tests (`tests/support`) and the unit tests of publishing
//! (`src/repo/publish/tests.rs`, through `#[path]`), so both drive apt the same way.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("{command:?} cannot run: {error}"))
}

/// An apt configuration of its own: state, cache, sources and keys under `directory`,
/// nothing read from the host's /etc/apt or /var/lib/apt.
pub(crate) struct Apt {
    directory: PathBuf,
}

impl Apt {
    pub(crate) fn new(directory: &Path, url: &str, key: &[u8]) -> Apt {
        Apt::for_suite(directory, url, "test", key)
    }

    /// An apt that reads `suites` (one suite, or several separated by spaces) of the
    /// repository at `url`, trusting `key` through Signed-By.
    pub(crate) fn for_suite(directory: &Path, url: &str, suites: &str, key: &[u8]) -> Apt {
        for sub in [
            "state/lists/partial",
            "cache/archives/partial",
            "etc/sources.list.d",
            "etc/trusted.gpg.d",
            "etc/preferences.d",
            "etc/apt.conf.d",
            "keyrings",
            "download",
        ] {
            fs::create_dir_all(directory.join(sub)).expect("apt dirs");
        }
        fs::write(directory.join("state/status"), "").expect("status");
        fs::write(directory.join("etc/sources.list"), "").expect("sources.list");
        let key_path = directory.join("keyrings/debstage-test.gpg");
        fs::write(&key_path, key).expect("key");
        let sources_text = format!(
            "Types: deb\nURIs: {url}\nSuites: {suites}\nComponents: main\nSigned-By: {}\n",
            key_path.display()
        );
        fs::write(
            directory.join("etc/sources.list.d/debstage-test.sources"),
            sources_text,
        )
        .expect("sources");
        Apt {
            directory: directory.to_path_buf(),
        }
    }

    pub(crate) fn command(&self, arguments: &[&str]) -> Output {
        self.tool("apt-get", arguments)
    }

    pub(crate) fn tool(&self, program: &str, arguments: &[&str]) -> Output {
        let directory = &self.directory;
        let option = |name: &str, value: &Path| format!("{name}={}", value.display());
        let mut command = Command::new(program);
        command
            .current_dir(directory.join("download"))
            .env("LC_ALL", "C.UTF-8")
            .arg("-q")
            .arg("-o")
            .arg(option("Dir::State", &directory.join("state")))
            .arg("-o")
            .arg(option(
                "Dir::State::status",
                &directory.join("state/status"),
            ))
            .arg("-o")
            .arg(option("Dir::Cache", &directory.join("cache")))
            .arg("-o")
            .arg(option(
                "Dir::Cache::archives",
                &directory.join("cache/archives"),
            ))
            .arg("-o")
            .arg(option("Dir::Etc", &directory.join("etc")))
            .arg("-o")
            .arg(option(
                "Dir::Etc::sourcelist",
                &directory.join("etc/sources.list"),
            ))
            .arg("-o")
            .arg(option(
                "Dir::Etc::sourceparts",
                &directory.join("etc/sources.list.d"),
            ))
            .arg("-o")
            .arg(option(
                "Dir::Etc::trusted",
                &directory.join("etc/trusted.gpg"),
            ))
            .arg("-o")
            .arg(option(
                "Dir::Etc::trustedparts",
                &directory.join("etc/trusted.gpg.d"),
            ))
            .arg("-o")
            .arg(option(
                "Dir::Etc::preferencesparts",
                &directory.join("etc/preferences.d"),
            ))
            .arg("-o")
            .arg("Debug::NoLocking=1")
            .arg("-o")
            .arg("APT::Architecture=amd64")
            .arg("-o")
            .arg("APT::Architectures=amd64")
            .arg("-o")
            .arg("Acquire::Languages=none")
            // This machine's apt.conf.d turns both checks off (for a snapshot mirror).
            .arg("-o")
            .arg("Acquire::Check-Valid-Until=true")
            .arg("-o")
            .arg("Acquire::Check-Date=true")
            // The temp dirs are root's alone; apt's _apt sandbox user could not read them.
            .arg("-o")
            .arg("APT::Sandbox::User=root")
            .args(arguments);
        run(&mut command)
    }
}
