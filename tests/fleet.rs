//! The fleet view: provenance in `repo show` and `repo history`, and `repo diff`, on a
//! git repository of three commits built into three releases.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::snapshots::{settings, Story};
use crate::support::{example, run_ok};

/// The example in a git repository of three commits, each built into a release (1.0,
/// 1.1, 1.2; the third declares a new dependency), added to a repository: 1.0 promoted to
/// production, 1.1 to staging, 1.2 in test.
pub(crate) struct Fleet {
    pub(crate) story: Story,
    pub(crate) app: PathBuf,
}

/// git with a fixed author, committer and time, so the commits' hashes are the same in
/// every run.
fn git(directory: &Path, arguments: &[&str]) -> String {
    let output = run_ok(
        Command::new("git")
            .arg("-C")
            .arg(directory)
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(arguments)
            .env("GIT_AUTHOR_NAME", "Ada")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .env("GIT_AUTHOR_DATE", "2023-11-14T22:13:20Z")
            .env("GIT_COMMITTER_DATE", "2023-11-14T22:13:20Z")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE"),
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Fleet {
    pub(crate) fn new() -> Fleet {
        let (temp, app) = example("hello");
        let fleet = Fleet {
            story: Story::at(temp),
            app,
        };
        let out = fleet.story.out.clone();
        git(&fleet.app, &["init", "--quiet"]);
        let manifest = fleet.app.join("debstage.toml");
        let steps = [
            ("1.0", "The first release"),
            ("1.1", "Greet more warmly"),
            ("1.2", "Depend on curl for the health check"),
        ];
        for (index, (version, subject)) in steps.iter().enumerate() {
            if index > 0 {
                let script = fleet.app.join("app/bin/hello");
                let mut text = std::fs::read_to_string(&script).expect("read bin/hello");
                text.push_str(&format!("# {subject}\n"));
                std::fs::write(&script, text).expect("write bin/hello");
            }
            if *version == "1.2" {
                let mut text = std::fs::read_to_string(&manifest).expect("read manifest");
                text.push_str("\n[depends]\npackages = [\"curl\"]\n");
                std::fs::write(&manifest, text).expect("write manifest");
            }
            git(&fleet.app, &["add", "--all"]);
            git(&fleet.app, &["commit", "--quiet", "-m", subject]);
            fleet.ok(&[
                "--quiet",
                "build",
                "--manifest",
                &manifest.display().to_string(),
                "--out",
                &out.display().to_string(),
                "--compress",
                "gzip",
                "--version",
                version,
            ]);
        }
        fleet.ok(&["repo", "init", "--arch", "amd64", "--origin", "acme"]);
        for version in ["1.0", "1.1", "1.2"] {
            let built = out.join(format!("hello_{version}-1.build.json"));
            fleet.ok(&["repo", "add", "--manifest", &built.display().to_string()]);
        }
        fleet.ok(&["repo", "promote", "hello", "1.0", "--to", "staging"]);
        fleet.ok(&["repo", "promote", "hello", "1.0", "--to", "production"]);
        fleet.ok(&["repo", "promote", "hello", "1.1", "--to", "staging"]);
        fleet
    }

    /// The commit of each step, oldest first.
    pub(crate) fn commits(&self) -> Vec<String> {
        git(&self.app, &["log", "--reverse", "--format=%H"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(crate) fn ok(&self, arguments: &[&str]) -> String {
        self.story.ok(arguments)
    }

    pub(crate) fn shown(&self, arguments: &[&str]) -> String {
        self.story.shown(arguments)
    }

    pub(crate) fn root(&self) -> &Path {
        self.story.root()
    }
}

#[test]
fn show_and_history_carry_the_commit_of_each_release() {
    let fleet = Fleet::new();
    let commits = fleet.commits();
    assert_eq!(commits.len(), 3);
    let shown: serde_json::Value =
        serde_json::from_str(&fleet.ok(&["--format", "json", "repo", "show", "hello"]))
            .expect("JSON");
    let commit_of = |stage: &str| {
        shown["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .find(|entry| entry["stage"] == stage)
            .map(|entry| entry["provenance"]["commit"].clone())
    };
    assert_eq!(commit_of("test"), Some(commits[2].clone().into()));
    assert_eq!(commit_of("staging"), Some(commits[1].clone().into()));
    assert_eq!(commit_of("production"), Some(commits[0].clone().into()));
    // The rest of the provenance: the branch (git init's, main), this host, this
    // debstage, and no target (a build on the host).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host name");
    for entry in shown["stages"].as_array().expect("stages") {
        let provenance = &entry["provenance"];
        assert_eq!(provenance["branch"], "main", "{entry}");
        assert_eq!(provenance["build_host"], host.trim(), "{entry}");
        assert_eq!(
            provenance["debstage_version"],
            env!("CARGO_PKG_VERSION"),
            "{entry}"
        );
        assert_eq!(provenance["target"], serde_json::Value::Null, "{entry}");
    }
    let history: serde_json::Value =
        serde_json::from_str(&fleet.ok(&["--format", "json", "repo", "history"])).expect("JSON");
    let newest = history["entries"]
        .as_array()
        .and_then(|entries| entries.last())
        .expect("history entries");
    assert_eq!(newest["to_provenance"]["branch"], "main", "{newest}");
    assert_eq!(
        newest["to_provenance"]["build_host"],
        host.trim(),
        "{newest}"
    );
    settings(fleet.root()).bind(|| {
        insta::assert_snapshot!("fleet_show", fleet.shown(&["repo", "show", "hello"]));
        insta::assert_snapshot!("fleet_history", fleet.shown(&["repo", "history"]));
        insta::assert_snapshot!(
            "fleet_history_json",
            fleet.shown(&["--format", "json", "repo", "history"])
        );
    });
}

#[test]
fn diff_lists_the_commits_and_depends_between_stages() {
    let fleet = Fleet::new();
    let git = fleet.app.display().to_string();
    let diff: serde_json::Value = serde_json::from_str(&fleet.ok(&[
        "--format",
        "json",
        "repo",
        "diff",
        "production",
        "test",
        "--git",
        &git,
    ]))
    .expect("JSON");
    let commits = fleet.commits();
    let entry = &diff["applications"][0];
    assert_eq!(entry["from"]["version"], "1.0-1");
    assert_eq!(entry["to"]["version"], "1.2-1");
    let added: Vec<&str> = entry["commits"]["added"]
        .as_array()
        .expect("added")
        .iter()
        .map(|commit| commit["commit"].as_str().expect("hash"))
        .collect();
    assert_eq!(added, [commits[2].as_str(), commits[1].as_str()]);
    assert_eq!(entry["commits"]["removed"], serde_json::json!([]));
    assert_eq!(entry["depends"][0]["package"], "hello-{version}");
    assert!(
        entry["depends"][0]["to"]
            .as_str()
            .is_some_and(|depends| depends.contains("curl")),
        "{entry}"
    );
    settings(fleet.root()).bind(|| {
        insta::assert_snapshot!(
            "fleet_diff_production_test",
            fleet.shown(&["repo", "diff", "production", "test", "--git", &git])
        );
        insta::assert_snapshot!(
            "fleet_diff_test_staging",
            fleet.shown(&["repo", "diff", "test", "staging", "--git", &git])
        );
        insta::assert_snapshot!(
            "fleet_diff_staging_version",
            fleet.shown(&["repo", "diff", "staging", "1.2"])
        );
        insta::assert_snapshot!(
            "fleet_diff_same_json",
            fleet.shown(&["--format", "json", "repo", "diff", "production", "1.0-1"])
        );
        insta::assert_snapshot!(
            "fleet_diff_unknown",
            fleet.shown(&["repo", "diff", "staging", "9.9"])
        );
    });
}
