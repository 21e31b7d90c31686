//! Helpers shared by the integration tests: the binary, temporary copies of examples,
//! and running real Debian tools.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) mod apt;
pub(crate) mod http;
pub(crate) mod repository;
pub(crate) mod s3;
pub(crate) mod schema;
pub(crate) mod served;

/// The debstage binary under test, in the environment every test starts from (see
/// [`scrubbed`]).
pub fn debstage() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_debstage"));
    scrubbed(&mut command);
    command
}

/// The repository root.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command and returns its output, failing the test with both streams if it failed.
/// Takes the lock of the repository at `repo` as another writer would, noting
/// "pid 4242 (the test)" in it; held until the file is dropped.
pub fn hold_repository_lock(repo: &Path) -> fs::File {
    let mut holder = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(repo.join("lock"))
        .expect("lock file");
    holder.lock().expect("lock taken by the test");
    holder.set_len(0).expect("truncate");
    std::io::Write::write_all(&mut holder, b"pid 4242 (the test)").expect("note");
    holder
}

pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs a command expected to fail and returns its output.
pub fn run_fail(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        !output.status.success(),
        "{command:?} succeeded but should have failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An output for a failure message: without dpkg's "(Reading database ... N%" progress
/// lines, which fill the part of a long message that CI's log keeps.
pub fn without_progress(text: &str) -> String {
    text.lines()
        .filter(|line| !line.starts_with("(Reading database"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The environment every test of the binary starts from: `USER=tester` (history records
/// who), and none of the variables that would point debstage at another repository,
/// another user or a planted failure (`DEBSTAGE_REPO`, `SUDO_USER`, `DEBSTAGE_FAIL_AT`),
/// whatever the shell that runs the tests exported.
fn scrubbed(command: &mut Command) -> &mut Command {
    command
        .env("USER", "tester")
        .env_remove("SUDO_USER")
        .env_remove("DEBSTAGE_REPO")
        .env_remove("DEBSTAGE_FAIL_AT")
}

/// `debstage repo --repo ROOT ARGUMENTS` in that environment.
pub fn repo_command(root: &Path, arguments: &[&str]) -> Command {
    let mut command = debstage();
    command.arg("repo").arg("--repo").arg(root).args(arguments);
    command
}

/// Build manifests of the hello example at 1.0, 1.1 and 1.2 (gzip, SOURCE_DATE_EPOCH),
/// made once for every test that needs them.
pub fn hello_builds() -> &'static [PathBuf] {
    static BUILT: std::sync::OnceLock<(tempfile::TempDir, Vec<PathBuf>)> =
        std::sync::OnceLock::new();
    let (_, manifests) = BUILT.get_or_init(|| {
        let (temp, app) = example("hello");
        let out = temp.path().join("out");
        let manifests = ["1.0", "1.1", "1.2"]
            .iter()
            .map(|version| {
                let built = build(
                    &app.join("debstage.toml"),
                    &out,
                    &["--version", version, "--compress", "gzip"],
                );
                out.join(format!(
                    "{}_{}.build.json",
                    built["app"].as_str().expect("app"),
                    built["debian_version"].as_str().expect("debian_version")
                ))
            })
            .collect();
        (temp, manifests)
    });
    manifests
}

/// Writes a message past the test harness's capture: a skip, a fallback, a figure.
pub fn shout(message: &str) {
    use std::io::Write;
    let mut handle = std::io::stderr().lock();
    let _ = writeln!(handle, "\n*** debstage tests: {message} ***\n");
}

/// Whether CI runs these tests: `CI` set and not empty.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|value| !value.is_empty())
}

/// The one rule for a test that cannot run on this machine (no root, a tool or store
/// missing): under CI it fails with the reason, since a skip there would pass exactly the
/// tests that matter; elsewhere it is said loudly and the caller returns early.
pub fn cannot_run(what: &str, reason: &str) {
    if under_ci() {
        panic!("{what} cannot run and CI is set: {reason}");
    }
    shout(&format!("SKIPPED {what}: {reason}"));
}

/// Whether every program of `tools` (program, Debian package) is on PATH; under CI a
/// missing one fails the test, elsewhere it is said loudly and the test returns early.
pub fn tools_present(test: &str, tools: &[(&str, &str)]) -> bool {
    let missing = tools.iter().find(|(program, _)| {
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .map_or(true, |output| !output.status.success())
    });
    match missing {
        None => true,
        Some((program, package)) => {
            cannot_run(
                test,
                &format!(
                    "{program} is not installed (Debian package {package}; `make deps` installs it)"
                ),
            );
            false
        }
    }
}

/// Copies a directory tree (keeping modes and symlinks) with `cp -a`.
pub fn copy_tree(from: &Path, to: &Path) {
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

/// A fresh copy of `examples/<name>` in a temporary directory.
pub fn example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temporary directory");
    let target = temp.path().join(name);
    copy_tree(&project_root().join("examples").join(name), &target);
    (temp, target)
}

/// Builds a manifest into `out` with extra arguments; returns the build manifest JSON.
pub fn build(manifest: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let output = run_ok(
        debstage()
            .args(["--format", "json", "build", "--manifest"])
            .arg(manifest)
            .arg("--out")
            .arg(out)
            .args(extra)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    let document =
        serde_json::from_slice(&output.stdout).expect("build prints its manifest as JSON");
    schema::assert_valid("build", &document);
    document
}

/// The Version fields of the paragraphs of `package` in a Packages text.
pub fn versions_of(packages: &str, package: &str) -> Vec<String> {
    packages
        .split("\n\n")
        .filter(|stanza| stanza.starts_with(&format!("Package: {package}\n")))
        .filter_map(|stanza| {
            stanza
                .lines()
                .find_map(|line| line.strip_prefix("Version: "))
                .map(str::to_string)
        })
        .collect()
}

/// The files of a directory, sorted.
pub fn files_in(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(directory)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// SHA256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let bytes = fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The build manifest as `debstage build --format json` prints it and writes it to
/// `<app>_<debian_version>.build.json`: the JSON contract, read the way a user's script
/// would.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BuildManifest {
    pub app: String,
    pub version: String,
    pub revision: String,
    pub debian_version: String,
    pub stages: Vec<String>,
    pub packages: Vec<BuiltPackage>,
}

/// One package of a [`BuildManifest`].
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BuiltPackage {
    pub file: String,
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub size: u64,
    pub sha256: String,
    pub role: String,
    pub stage: Option<String>,
}

impl BuildManifest {
    /// The file name the build gives its manifest.
    pub fn file_name(&self) -> String {
        format!("{}_{}.build.json", self.app, self.debian_version)
    }
}

/// A venv under the tests' target directory with `requirement` installed by pip from
/// PyPI, made on first use with Debian's `/usr/bin/python3` and reused while its stamp
/// names the same requirement and `program` (a path in the venv) exists. One maker at a
/// time across test processes; the others wait and reuse its venv. Err says why it cannot
/// be had.
pub fn cached_venv(name: &str, requirement: &str, program: &str) -> Result<PathBuf, String> {
    use std::os::fd::AsRawFd;
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&base).map_err(|error| format!("{}: {error}", base.display()))?;
    let venv = base.join(name);
    let stamp = venv.join("debstage-installed");
    let lock_path = base.join(format!("{name}.lock"));
    let lock = fs::File::create(&lock_path)
        .map_err(|error| format!("{}: {error}", lock_path.display()))?;
    // SAFETY: flock on a descriptor this function owns; released when `lock` is dropped.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("cannot lock {}", lock_path.display()));
    }
    if fs::read_to_string(&stamp).is_ok_and(|text| text.trim() == requirement)
        && interpreter_exists(&venv.join(program))
    {
        return Ok(venv);
    }
    let python = Path::new("/usr/bin/python3");
    if !python.is_file() {
        return Err("Debian's /usr/bin/python3 is missing (`make deps` installs it)".into());
    }
    // A venv cannot be moved (its scripts name their interpreter by path), so it is made
    // in place and trusted only once the stamp is written, after pip succeeded.
    let _ = fs::remove_dir_all(&venv);
    let started = std::time::Instant::now();
    let made = Command::new(python)
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .map_err(|error| format!("cannot run {}: {error}", python.display()))?;
    if !made.status.success() {
        return Err(format!(
            "/usr/bin/python3 -m venv failed (python3-venv missing? `make deps` installs it):\n{}",
            stderr(&made)
        ));
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| format!("cannot run pip: {error}"))?;
    if !pip.status.success() {
        return Err(format!(
            "pip install {requirement} failed (is PyPI reachable?):\n{}\n{}",
            stdout(&pip),
            stderr(&pip)
        ));
    }
    fs::write(&stamp, format!("{requirement}\n"))
        .map_err(|error| format!("{}: {error}", stamp.display()))?;
    let mut handle = std::io::stderr().lock();
    let _ = std::io::Write::write_fmt(
        &mut handle,
        format_args!(
            "venv {name} ({requirement}) made in {:.1} s at {}\n",
            started.elapsed().as_secs_f64(),
            venv.display()
        ),
    );
    Ok(venv)
}

/// Whether `script` exists and the interpreter its `#!` line names does too: a venv that
/// was copied or whose directory moved keeps scripts that name the old path.
fn interpreter_exists(script: &Path) -> bool {
    let Ok(text) = fs::read(script) else {
        return false;
    };
    let first = text.split(|byte| *byte == b'\n').next().unwrap_or_default();
    match first.strip_prefix(b"#!") {
        Some(line) => String::from_utf8_lossy(line)
            .split_whitespace()
            .next()
            .is_some_and(|interpreter| Path::new(interpreter).is_file()),
        None => true,
    }
}

/// Runs lintian, without the machine's configuration, on `debs` with `options`.
pub fn lintian(options: &[&str], debs: &[&Path]) -> Output {
    Command::new("lintian")
        .args(["--no-cfg", "--fail-on", "none", "--tag-display-limit", "0"])
        .args(options)
        .args(debs)
        .output()
        .expect("lintian runs (make deps installs it)")
}

/// Runs lintian on `debs` and fails on any error or warning beyond the overrides they
/// ship.
pub fn assert_lintian_clean(debs: &[&Path]) {
    let output = lintian(&["-L", ">=warning"], debs);
    let report = stdout(&output);
    let problems: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("E:") || line.starts_with("W:"))
        .collect();
    assert!(
        problems.is_empty(),
        "lintian:\n{report}\n{}",
        stderr(&output)
    );
}
