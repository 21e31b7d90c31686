//! The one repository fixture: a repository made by `repo init` in a temporary
//! directory, driven through the binary in the scrubbed environment of
//! [`super::debstage`]. Test areas wrap it (`Deref`) and add what only they need.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A repository at `<temp>/repo`, with the temporary directory kept alive for the test.
pub struct TestRepository {
    temp: tempfile::TempDir,
    /// The repository directory (`--repo`).
    pub repo: PathBuf,
    environment: Vec<(String, String)>,
}

impl TestRepository {
    /// `repo init ARGUMENTS` in a new temporary directory.
    pub fn init(arguments: &[&str]) -> TestRepository {
        TestRepository::init_with(arguments, &[])
    }

    /// `repo init ARGUMENTS` with `environment` set for every command of this
    /// repository, `repo init` included (`SOURCE_DATE_EPOCH` for reproducible listings).
    pub fn init_with(arguments: &[&str], environment: &[(&str, &str)]) -> TestRepository {
        let temp = tempfile::tempdir().expect("temp dir");
        let repository = TestRepository::attach(&temp.path().join("repo"), environment);
        let repository = TestRepository { temp, ..repository };
        let mut all = vec!["init"];
        all.extend_from_slice(arguments);
        repository.ok(&all);
        repository
    }

    /// A repository another part of the test made (a served one), driven the same way;
    /// [`TestRepository::dir`] is then a temporary directory of its own.
    pub fn attach(repo: &Path, environment: &[(&str, &str)]) -> TestRepository {
        TestRepository {
            temp: tempfile::tempdir().expect("temp dir"),
            repo: repo.to_path_buf(),
            environment: environment
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        }
    }

    /// The temporary directory the repository lives in, for the test's other files.
    pub fn dir(&self) -> &Path {
        self.temp.path()
    }

    /// `debstage repo --repo REPO ARGUMENTS`, not yet run.
    pub fn command(&self, arguments: &[&str]) -> Command {
        let mut command = super::repo_command(&self.repo, arguments);
        for (name, value) in &self.environment {
            command.env(name, value);
        }
        command
    }

    /// Runs a repository command; with `--format json`, what it printed is checked
    /// against the command's schema (docs/schemas/).
    pub fn output(&self, arguments: &[&str]) -> Output {
        let output = self
            .command(arguments)
            .output()
            .unwrap_or_else(|error| panic!("debstage repo {arguments:?}: {error}"));
        let mut all = vec!["repo"];
        all.extend_from_slice(arguments);
        super::schema::check_output(&all, &output);
        output
    }

    /// Runs a command that must succeed; its stdout.
    pub fn ok(&self, arguments: &[&str]) -> String {
        let output = self.output(arguments);
        assert!(
            output.status.success(),
            "debstage repo {arguments:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a command that must fail with exit code 1; its stderr.
    pub fn fails(&self, arguments: &[&str]) -> String {
        self.fails_with(1, arguments)
    }

    /// Runs a command that must fail with exit code `code`; its stderr.
    pub fn fails_with(&self, code: i32, arguments: &[&str]) -> String {
        let output = self.output(arguments);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(code),
            "debstage repo {arguments:?} should fail with code {code}:\n{stderr}"
        );
        stderr
    }

    /// `--format json ARGUMENTS`, which must succeed: its document, schema-checked.
    pub fn json(&self, arguments: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(arguments);
        serde_json::from_str(&self.ok(&all)).expect("JSON output")
    }
}
