//! Crash tests: every writer is killed (SIGKILL, by `DEBSTAGE_FAIL_AT`) at each named
//! failure point of add, promote, rollback, remove, gc and publish; then the next command
//! runs, and the repository must be whole: `repo verify` clean, `InRelease` and
//! `Release.gpg` verified by gpgv with the repository's key, every file any `Packages`
//! (by-hash generations included) names present, and an isolated `apt-get update` with
//! `Signed-By` against `debstage repo serve` succeeding.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use crate::support::apt::Apt;
use crate::support::served::Served;

const STAGES: [&str; 3] = ["test", "staging", "production"];
const ORIGIN: &str = "faults";

/// The shared repository fixture with the stages of these tests, and a `work/`
/// directory beside the repository.
pub(crate) struct Repo {
    repository: support::repository::TestRepository,
    pub(crate) root: PathBuf,
    work: PathBuf,
}

impl std::ops::Deref for Repo {
    type Target = support::repository::TestRepository;

    fn deref(&self) -> &Self::Target {
        &self.repository
    }
}

impl Repo {
    /// `repo init` with the stages, and `[retention] grace = "0"` so that only the
    /// number of generations holds files (the tests need no hour of waiting).
    pub(crate) fn new() -> Repo {
        let repository = support::repository::TestRepository::init(&[
            "--arch",
            "amd64",
            "--origin",
            ORIGIN,
            "--stages",
            &STAGES.join(","),
        ]);
        let root = repository.repo.clone();
        let work = repository.dir().join("work");
        fs::create_dir_all(&work).expect("work dir");
        let config = root.join("debstage-repo.toml");
        let text = fs::read_to_string(&config).expect("config");
        let text = text.replace("grace = \"1h\"", "grace = \"0\"");
        fs::write(&config, text).expect("config");
        Repo {
            repository,
            root,
            work,
        }
    }

    /// Adds the build of hello `index` (0: 1.0, 1: 1.1, 2: 1.2) to test.
    fn add(&self, index: usize) {
        self.ok(&[
            "add",
            "--manifest",
            path_str(&support::hello_builds()[index]),
        ]);
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// One scenario: the state before, the command killed, the command run after.
struct Scenario {
    point: &'static str,
    setup: fn(&Repo),
    killed: Vec<String>,
    next: Vec<String>,
}

fn add_one() -> Vec<String> {
    let manifest = path_str(&support::hello_builds()[0]).to_string();
    vec!["add".into(), "--manifest".into(), manifest]
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn scenarios() -> Vec<Scenario> {
    let mut all = Vec::new();
    for point in [
        "add-checked",
        "add-staged",
        "add-committed",
        "add-placed",
        "publish-indexes-written",
        "publish-by-hash-linked",
        "publish-renamed-Release",
        "publish-renamed-Release.gpg",
        "publish-renamed-InRelease",
        "publish-release-files-written",
        "publish-before-paid",
    ] {
        // The same command retried is the next command (the case that used to say
        // "suite test unchanged" and publish nothing).
        all.push(Scenario {
            point,
            setup: |_| {},
            killed: add_one(),
            next: add_one(),
        });
    }
    for point in [
        "promote-committed",
        "publish-renamed-Release",
        "publish-renamed-Release.gpg",
    ] {
        all.push(Scenario {
            point,
            setup: |repo| repo.add(0),
            killed: words("promote hello 1.0"),
            next: words("promote hello 1.0"),
        });
    }
    all.push(Scenario {
        point: "rollback-committed",
        setup: |repo| {
            repo.add(0);
            repo.add(1);
        },
        killed: words("rollback hello test"),
        next: words("gc --keep 10"),
    });
    for point in ["remove-committed", "remove-published"] {
        all.push(Scenario {
            point,
            setup: |repo| {
                repo.add(0);
                repo.add(1);
            },
            killed: words("remove hello 1.0"),
            next: words("gc --keep 10"),
        });
    }
    for point in ["gc-committed", "gc-published", "publish-renamed-InRelease"] {
        all.push(Scenario {
            point,
            setup: |repo| {
                repo.add(0);
                repo.add(1);
                repo.add(2);
            },
            killed: words("gc --keep 0"),
            next: words("gc --keep 0"),
        });
    }
    // A file no index names any more: 1.0 removed, then enough publications that no
    // kept generation lists it; gc deletes it, and dies after the first deletion.
    all.push(Scenario {
        point: "gc-deleting",
        setup: |repo| {
            repo.add(0);
            repo.add(1);
            repo.ok(&["remove", "hello", "1.0"]);
            for _ in 0..3 {
                repo.ok(&["publish"]);
            }
        },
        killed: words("gc --keep 10"),
        next: words("gc --keep 10"),
    });
    all
}

/// Runs one scenario; returns what is wrong afterwards (nothing when it passes).
fn run_scenario(scenario: &Scenario) -> Vec<String> {
    let repo = Repo::new();
    (scenario.setup)(&repo);
    let killed: Vec<&str> = scenario.killed.iter().map(String::as_str).collect();
    let output = repo
        .command(&killed)
        .env("DEBSTAGE_FAIL_AT", scenario.point)
        .output()
        .expect("debstage runs");
    let mut problems = Vec::new();
    if output.status.signal() != Some(9) {
        problems.push(format!(
            "{killed:?} was not killed at {} ({}): {}",
            scenario.point,
            output.status,
            support::stderr(&output)
        ));
    }
    // Between the commit and the end of the publication, verify names the debt.
    let owes = scenario.point.starts_with("publish-")
        || scenario.point.ends_with("-committed")
        || scenario.point == "add-placed";
    if owes {
        let verify = repo.command(&["verify"]).output().expect("verify runs");
        let text = support::stderr(&verify);
        if verify.status.success() || !text.contains("publication pending") {
            problems.push(format!(
                "repo verify after the kill does not report the pending publication: {text}"
            ));
        }
    }
    let next: Vec<&str> = scenario.next.iter().map(String::as_str).collect();
    let output = repo.command(&next).output().expect("debstage runs");
    if !output.status.success() {
        problems.push(format!(
            "the next command {next:?} failed: {}",
            support::stderr(&output)
        ));
    }
    problems.extend(repository_problems(&repo));
    problems
}

/// What a client or `repo verify` would find wrong in the repository.
pub(crate) fn repository_problems(repo: &Repo) -> Vec<String> {
    let mut problems = Vec::new();
    let verify = repo.command(&["verify"]).output().expect("verify runs");
    if !verify.status.success() {
        problems.push(format!("repo verify: {}", support::stderr(&verify)));
    }
    let keyring = repo.root.join(format!("{ORIGIN}.gpg"));
    for stage in STAGES {
        let suite = repo.root.join("dists").join(stage);
        let checks = [
            vec![suite.join("InRelease")],
            vec![suite.join("Release.gpg"), suite.join("Release")],
        ];
        for files in checks {
            let output = Command::new("gpgv")
                .arg("--keyring")
                .arg(&keyring)
                .args(&files)
                .output()
                .expect("gpgv runs");
            if !output.status.success() {
                problems.push(format!(
                    "gpgv {}: {}",
                    files[0].display(),
                    support::stderr(&output)
                ));
            }
        }
    }
    problems.extend(missing_pool_files(&repo.root));
    problems.extend(apt_update_problems(repo));
    problems
}

/// Files that a Packages file (plain or by-hash) names and the pool lacks.
fn missing_pool_files(root: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    for entry in walkdir::WalkDir::new(root.join("dists")) {
        let entry = entry.expect("dists readable");
        let path = entry.path();
        let bytes = match fs::read(path) {
            Ok(bytes) if entry.file_type().is_file() => bytes,
            _ => continue,
        };
        let plain = path.file_name().is_some_and(|name| name == "Packages")
            || (path.to_string_lossy().contains("/by-hash/SHA512/")
                && !bytes.starts_with(b"\x1f\x8b")
                && !bytes.starts_with(b"\xfd7zXZ"));
        if !plain {
            continue;
        }
        for line in String::from_utf8_lossy(&bytes).lines() {
            if let Some(filename) = line.strip_prefix("Filename: ") {
                if !root.join(filename).is_file() {
                    missing.push(format!(
                        "{} names {filename}, which is not in the pool",
                        path.strip_prefix(root).unwrap_or(path).display()
                    ));
                }
            }
        }
    }
    missing
}

fn serve(repo: &Repo) -> Served {
    Served::start(|address| repo.command(&["serve", "--addr", address]))
}

/// `apt-get update` with its own state and configuration, every stage's suite trusted
/// through Signed-By with the repository's exported key.
fn apt_update_problems(repo: &Repo) -> Vec<String> {
    let served = serve(repo);
    let directory = repo.work.join("apt");
    let _ = fs::remove_dir_all(&directory);
    let key = fs::read(repo.root.join(format!("{ORIGIN}.gpg"))).expect("the exported key");
    let apt = Apt::for_suite(&directory, &served.url(), &STAGES.join(" "), &key);
    let output = apt.command(&["update"]);
    let text = format!("{}{}", support::stdout(&output), support::stderr(&output));
    let failed = !output.status.success()
        || text.lines().any(|line| {
            line.starts_with("W:") || line.starts_with("E:") || line.starts_with("Err:")
        });
    if failed {
        vec![format!("apt-get update ({}):\n{text}", output.status)]
    } else {
        Vec::new()
    }
}

fn outcome_table(results: &[(String, Vec<String>)]) -> String {
    let mut table =
        String::from("| failure point | command killed | runs | failures |\n|---|---|---|---|\n");
    for (name, problems) in results {
        table.push_str(&format!(
            "| {name} | 1 | {} |\n",
            usize::from(!problems.is_empty())
        ));
    }
    table
}

/// A command line with paths cut to their file names.
fn shown(arguments: &[String]) -> String {
    arguments
        .iter()
        .map(|argument| argument.rsplit('/').next().unwrap_or(argument))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
#[allow(clippy::print_stderr)]
fn every_failure_point_is_repaired_by_the_next_command() {
    support::hello_builds();
    let mut results = Vec::new();
    for scenario in scenarios() {
        let problems = run_scenario(&scenario);
        results.push((
            format!("{} | {}", scenario.point, shown(&scenario.killed)),
            problems,
        ));
    }
    eprintln!("{}", outcome_table(&results));
    let failures: Vec<String> = results
        .iter()
        .filter(|(_, problems)| !problems.is_empty())
        .map(|(name, problems)| format!("{name}:\n  {}", problems.join("\n  ")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The by-hash files (SHA512, the only ones written) of a suite's amd64 Packages directory.
fn by_hash_count(repo: &Repo, suite: &str) -> usize {
    let directory = repo
        .root
        .join("dists")
        .join(suite)
        .join("main/binary-amd64/by-hash/SHA512");
    support::files_in(&directory).len()
}

#[test]
fn by_hash_keeps_the_last_generations_and_pool_files_they_name() {
    let repo = Repo::new();
    for index in 0..3 {
        repo.add(index);
    }
    // Three generations with packages (and the empty one of init): with grace 0, the
    // last three stay, each as Packages, Packages.gz and Packages.xz.
    assert_eq!(by_hash_count(&repo, "test"), 9);
    repo.ok(&["remove", "hello", "1.0"]);
    let payload = repo.root.join("pool/main/h/hello/hello-1.0_1.0-1_all.deb");
    // Still named by the two generations before the removal.
    repo.ok(&["gc", "--keep", "10"]);
    assert!(
        payload.exists(),
        "deleted while a served generation names it"
    );
    repo.ok(&["publish"]);
    repo.ok(&["gc", "--keep", "10"]);
    assert!(
        payload.exists(),
        "deleted while a served generation names it"
    );
    repo.ok(&["publish"]);
    repo.ok(&["gc", "--keep", "10"]);
    assert!(
        !payload.exists(),
        "kept after no served generation names it"
    );
    assert!(repository_problems(&repo).is_empty());
}

#[test]
fn the_grace_period_keeps_every_recent_generation() {
    let repo = Repo::new();
    let config = repo.root.join("debstage-repo.toml");
    let text = fs::read_to_string(&config).expect("config");
    fs::write(&config, text.replace("grace = \"0\"", "grace = \"1h\"")).expect("config");
    for index in 0..3 {
        repo.add(index);
    }
    repo.ok(&["remove", "hello", "1.0"]);
    // init's empty index, three adds and the removal: five generations within the hour.
    assert_eq!(by_hash_count(&repo, "test"), 15);
}
