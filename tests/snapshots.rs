//! What users read, pinned: the text and JSON that `debstage build` and the repository
//! commands print for the bundled example carried through its stages, and the errors a
//! user meets first. Temporary paths, times, the user's name and the repository's key
//! (new in each repository) are filtered; everything else (hashes included, with
//! SOURCE_DATE_EPOCH) is stable. Every JSON output is also checked against its schema.
//!
//! A change in wording or in a table shows up as a snapshot diff in review; accept it with
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test snapshots`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{debstage, example};

/// The example, built and added to a fresh repository, promoted to production through
/// staging, then 1.1 added and promoted to staging.
pub(crate) struct Story {
    temp: tempfile::TempDir,
    pub(crate) repo: PathBuf,
    pub(crate) out: PathBuf,
}

impl Story {
    /// A story in `temp` with nothing done yet: its repository (`repo`) and build output
    /// (`out`) directories go there.
    pub(crate) fn at(temp: tempfile::TempDir) -> Story {
        let out = temp.path().join("out");
        let repo = temp.path().join("repo");
        Story { temp, repo, out }
    }

    pub(crate) fn new() -> Story {
        let (temp, app) = example("hello");
        let story = Story::at(temp);
        story.ok(&["repo", "init", "--arch", "amd64", "--origin", "acme"]);
        for version in ["1.0", "1.1"] {
            story.ok(&[
                "--quiet",
                "build",
                "--manifest",
                &app.join("debstage.toml").display().to_string(),
                "--out",
                &story.out.display().to_string(),
                "--compress",
                "gzip",
                "--version",
                version,
            ]);
            let manifest = story.out.join(format!("hello_{version}-1.build.json"));
            story.ok(&["repo", "add", "--manifest", &manifest.display().to_string()]);
            story.ok(&["repo", "promote", "hello", version, "--to", "staging"]);
        }
        story.ok(&["repo", "promote", "hello", "1.0", "--to", "production"]);
        story
    }

    pub(crate) fn command(&self, arguments: &[&str]) -> Command {
        let mut command = debstage();
        command
            .args(arguments)
            .env("DEBSTAGE_REPO", &self.repo)
            .env("SOURCE_DATE_EPOCH", "1700000000");
        command
    }

    /// Runs debstage; with `--format json`, what it printed is checked against its schema.
    pub(crate) fn output(&self, arguments: &[&str]) -> Output {
        let output = self
            .command(arguments)
            .output()
            .unwrap_or_else(|error| panic!("debstage {arguments:?}: {error}"));
        crate::support::schema::check_output(arguments, &output);
        output
    }

    pub(crate) fn ok(&self, arguments: &[&str]) -> String {
        let output = self.output(arguments);
        assert!(
            output.status.success(),
            "debstage {arguments:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// stdout of a successful command and stderr of a failed one, with the exit code.
    pub(crate) fn shown(&self, arguments: &[&str]) -> String {
        let output = self.output(arguments);
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    pub(crate) fn root(&self) -> &Path {
        self.temp.path()
    }
}

/// Filters for what changes from run to run: the temporary directory and times.
pub(crate) fn settings(root: &Path) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.add_filter(&regex_escape(&root.display().to_string()), "[TEMP]");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[TIME]");
    // Each repository gets a new signing key.
    settings.add_filter(
        r"-----BEGIN PGP PUBLIC KEY BLOCK-----[^-]*-----END PGP PUBLIC KEY BLOCK-----",
        "[PUBLIC KEY]",
    );
    settings.add_filter(r"\b[0-9A-F]{40}\b", "[FINGERPRINT]");
    // The keyring package holds those keys: its bytes differ with them.
    settings.add_filter(
        r#"("package": "[a-z0-9.+-]+-archive-keyring",\s*"role": "plain",\s*"sha256": )"[0-9a-f]{64}",(\s*"size": )\d+"#,
        r#"$1"[KEYRING SHA256]",${2}[KEYRING SIZE]"#,
    );
    // Provenance that comes from the machine and the build of debstage.
    settings.add_filter(r#""build_host": "[^"]*""#, r#""build_host": "[HOST]""#);
    settings.add_filter(
        r#""debstage_version": "[^"]*""#,
        r#""debstage_version": "[DEBSTAGE_VERSION]""#,
    );
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn repository_listings_in_text_and_json() {
    let story = Story::new();
    settings(story.root()).bind(|| {
        insta::assert_snapshot!("repo_list", story.shown(&["repo", "list"]));
        insta::assert_snapshot!(
            "repo_list_json",
            story.shown(&["--format", "json", "repo", "list"])
        );
        insta::assert_snapshot!("repo_show", story.shown(&["repo", "show", "hello"]));
        insta::assert_snapshot!(
            "repo_show_json",
            story.shown(&["--format", "json", "repo", "show", "hello"])
        );
        insta::assert_snapshot!("repo_history", story.shown(&["repo", "history"]));
        insta::assert_snapshot!(
            "repo_history_json",
            story.shown(&["--format", "json", "repo", "history"])
        );
        insta::assert_snapshot!("repo_verify", story.shown(&["repo", "verify"]));
        insta::assert_snapshot!(
            "repo_verify_json",
            story.shown(&["--format", "json", "repo", "verify"])
        );
        insta::assert_snapshot!(
            "repo_export_key_json",
            story.shown(&["--format", "json", "repo", "export-key"])
        );
        insta::assert_snapshot!(
            "repo_sources",
            story.shown(&[
                "repo",
                "sources",
                "production",
                "--url",
                "http://repo.example:8080",
                "--app",
                "hello"
            ])
        );
        insta::assert_snapshot!(
            "repo_sources_json",
            story.shown(&[
                "--format",
                "json",
                "repo",
                "sources",
                "production",
                "--url",
                "http://repo.example:8080",
                "--app",
                "hello"
            ])
        );
    });
}

#[test]
fn changes_and_refusals_say_what_happened() {
    let story = Story::new();
    settings(story.root()).bind(|| {
        insta::assert_snapshot!(
            "repo_rollback",
            story.shown(&["repo", "rollback", "hello", "staging"])
        );
        insta::assert_snapshot!(
            "repo_promote_unknown_version",
            story.shown(&["repo", "promote", "hello", "9.9", "--to", "staging"])
        );
        insta::assert_snapshot!(
            "repo_list_unknown_stage",
            story.shown(&["repo", "list", "prod"])
        );
        let manifest = story
            .out
            .join("hello_1.0-1.build.json")
            .display()
            .to_string();
        insta::assert_snapshot!(
            "repo_add_again_json",
            story.shown(&["--format", "json", "repo", "add", "--manifest", &manifest])
        );
        insta::assert_snapshot!(
            "repo_add_again",
            story.shown(&["repo", "add", "--manifest", &manifest])
        );
        // Last: these move test back, which changes what `repo add` says above.
        insta::assert_snapshot!(
            "repo_rollback_json",
            story.shown(&["--format", "json", "repo", "rollback", "hello", "test"])
        );
        insta::assert_snapshot!(
            "repo_rollback_noop_json",
            story.shown(&["--format", "json", "repo", "rollback", "hello", "test", "--to", "1.0"])
        );
        insta::assert_snapshot!(
            "repo_promote_noop_json",
            story.shown(&[
                "--format",
                "json",
                "repo",
                "promote",
                "hello",
                "1.0",
                "--to",
                "production"
            ])
        );
    });
}

#[test]
fn build_output_and_first_errors() {
    let story = Story::new();
    let (temp, app) = example("hello");
    let mut settings = settings(temp.path());
    settings.add_filter(&regex_escape(&story.root().display().to_string()), "[TEMP]");
    settings.bind(|| {
        let manifest = app.join("debstage.toml").display().to_string();
        let out = temp.path().join("out").display().to_string();
        let build = |extra: &[&str]| {
            let mut arguments = vec![
                "build",
                "--manifest",
                &manifest,
                "--out",
                &out,
                "--compress",
                "gzip",
            ];
            arguments.extend_from_slice(extra);
            story.shown(&arguments)
        };
        insta::assert_snapshot!("build_text", build(&[]));
        insta::assert_snapshot!(
            "build_json",
            build(&["--format", "json", "--version", "1.2"])
        );
        insta::assert_snapshot!("build_bad_version", build(&["--version", "1.0-rc1"]));
        let empty = temp.path().join("empty");
        std::fs::create_dir_all(&empty).expect("dir");
        let missing = story
            .command(&["build"])
            .current_dir(&empty)
            .output()
            .expect("runs");
        insta::assert_snapshot!(
            "build_without_manifest",
            format!(
                "exit: {}\n--- stderr\n{}",
                missing.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&missing.stderr)
            )
        );
    });
}

/// With `--format json` an error is one JSON object on stderr, with its kind and, for a
/// manifest, the file and key; exit codes follow the kind.
#[test]
fn errors_in_json_mode_are_one_object() {
    let story = Story::new();
    settings(story.root()).bind(|| {
        insta::assert_snapshot!(
            "json_error_unknown_version",
            story
                .shown(&["--format", "json", "repo", "promote", "hello", "9.9", "--to", "staging"])
        );
        let (temp, app) = example("hello");
        let manifest = app.join("debstage.toml");
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        std::fs::write(
            &manifest,
            text.replace("name = \"hello\"", "name = \"Hello\""),
        )
        .expect("write");
        let output = story.output(&[
            "--format",
            "json",
            "build",
            "--manifest",
            &manifest.display().to_string(),
            "--out",
            &temp.path().join("out").display().to_string(),
        ]);
        assert_eq!(output.status.code(), Some(1));
        let error: serde_json::Value =
            serde_json::from_slice(&output.stderr).expect("stderr is one JSON object");
        assert_eq!(error["schema_version"], 1);
        assert_eq!(error["error"]["kind"], "input");
        assert_eq!(error["error"]["key"], "[package] name");
        assert_eq!(error["error"]["file"], manifest.display().to_string());
    });
}

/// Global options are taken before or after the verb, and the stage is an argument in
/// every repository command (`--stage` stays accepted where it was).
#[test]
fn options_and_stages_are_given_the_same_way_everywhere() {
    let story = Story::new();
    let repo = story.repo.display().to_string();
    let placements: [&[&str]; 4] = [
        &[
            "--repo",
            &repo,
            "--format",
            "json",
            "repo",
            "list",
            "production",
        ],
        &[
            "repo",
            "--repo",
            &repo,
            "list",
            "production",
            "--format",
            "json",
        ],
        &[
            "repo",
            "list",
            "production",
            "--repo",
            &repo,
            "--format",
            "json",
        ],
        &[
            "--format",
            "json",
            "repo",
            "list",
            "production",
            "--repo",
            &repo,
        ],
    ];
    let outputs: Vec<String> = placements
        .iter()
        .map(|arguments| {
            let mut command = debstage();
            command.args(*arguments).env_remove("DEBSTAGE_REPO");
            let output = command.output().expect("runs");
            assert!(
                output.status.success(),
                "{arguments:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        })
        .collect();
    assert!(
        outputs.iter().all(|output| output == &outputs[0]),
        "{outputs:?}"
    );
    assert!(outputs[0].contains("hello-production"), "{}", outputs[0]);
}

/// The commands that create and tidy: `debstage init`, `repo init`, `repo remove`,
/// `repo gc` (with `--forget`) and `repo publish`, in text and JSON where they print data,
/// and the rollback a removal refuses.
#[test]
fn creating_and_tidying_commands() {
    let story = Story::new();
    let fresh = story.root().join("fresh-app");
    std::fs::create_dir_all(&fresh).expect("dir");
    settings(story.root()).bind(|| {
        insta::assert_snapshot!(
            "init",
            story.shown(&["init", &fresh.display().to_string(), "--name", "fresh"])
        );
        let other = story.root().join("other-repo").display().to_string();
        insta::assert_snapshot!(
            "repo_init",
            story
                .shown(&["--repo", &other, "repo", "init", "--origin", "other", "--arch", "amd64"])
        );
        insta::assert_snapshot!(
            "repo_remove_refused",
            story.shown(&["repo", "remove", "hello", "1.0"])
        );
        insta::assert_snapshot!(
            "repo_remove_from_stage_json",
            story.shown(&["--format", "json", "repo", "remove", "hello", "1.0", "test"])
        );
        insta::assert_snapshot!("repo_gc", story.shown(&["repo", "gc", "--keep", "0"]));
        insta::assert_snapshot!(
            "repo_gc_json",
            story.shown(&["--format", "json", "repo", "gc", "--keep", "0"])
        );
        insta::assert_snapshot!(
            "repo_rollback_to_unlisted_refused",
            story.shown(&["repo", "rollback", "hello", "test"])
        );
        insta::assert_snapshot!(
            "repo_gc_forget",
            story.shown(&["repo", "gc", "--keep", "0", "--forget"])
        );
        insta::assert_snapshot!("repo_publish", story.shown(&["repo", "publish"]));
    });
}

/// `build --target`: a codename debstage does not know, given on the command line or in
/// `[build] targets`, and `--target all` without a list (text and JSON).
#[test]
fn build_targets_that_are_refused() {
    let (temp, app) = example("hello");
    let manifest = app.join("debstage.toml").display().to_string();
    let out = temp.path().join("out").display().to_string();
    let shown = |arguments: &[&str]| {
        let output = debstage().args(arguments).output().expect("debstage runs");
        crate::support::schema::check_output(arguments, &output);
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    settings(temp.path()).bind(|| {
        let build = ["build", "--manifest", &manifest, "--out", &out, "--target"];
        insta::assert_snapshot!(
            "build_target_unknown",
            shown(&[&build[..], &["buster"]].concat())
        );
        insta::assert_snapshot!(
            "build_target_all_without_targets",
            shown(&[&build[..], &["all"]].concat())
        );
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        std::fs::write(
            &manifest,
            format!("{text}\n[build]\ntargets = [\"bookworm\", \"sid\"]\n"),
        )
        .expect("write");
        insta::assert_snapshot!(
            "build_target_unknown_in_manifest_json",
            shown(&[&["--format", "json"][..], &build[..], &["all"]].concat())
        );
    });
    assert!(!temp.path().join("out").exists());
}

/// The example built for bookworm and for trixie (release 1.0-1), both added to one
/// repository and promoted to staging together; then 1.1 for bookworm only.
fn distribution_story() -> Story {
    let (temp, app) = example("hello");
    let out = temp.path().join("out");
    let repo = temp.path().join("repo");
    let story = Story { temp, repo, out };
    story.ok(&["repo", "init", "--arch", "amd64", "--origin", "acme"]);
    let manifest = app.join("debstage.toml").display().to_string();
    for (version, target) in [("1.0", "bookworm"), ("1.0", "trixie"), ("1.1", "bookworm")] {
        let out = story.out.display().to_string();
        story.ok(&[
            "--quiet",
            "build",
            "--manifest",
            &manifest,
            "--out",
            &out,
            "--compress",
            "gzip",
            "--version",
            version,
            "--target",
            target,
        ]);
    }
    story
}

impl Story {
    /// The build manifest of `debian_version` in the story's output directory.
    fn manifest(&self, debian_version: &str) -> String {
        self.out
            .join(format!("hello_{debian_version}.build.json"))
            .display()
            .to_string()
    }
}

#[test]
fn distributions_in_text_and_json() {
    let story = distribution_story();
    settings(story.root()).bind(|| {
        insta::assert_snapshot!(
            "dist_add",
            story.shown(&["repo", "add", "--manifest", &story.manifest("1.0-1+deb12")])
        );
        insta::assert_snapshot!(
            "dist_add_json",
            story.shown(&[
                "--format",
                "json",
                "repo",
                "add",
                "--manifest",
                &story.manifest("1.0-1+deb13")
            ])
        );
        insta::assert_snapshot!(
            "dist_promote_json",
            story.shown(&["--format", "json", "repo", "promote", "hello", "1.0-1"])
        );
        story.ok(&["repo", "add", "--manifest", &story.manifest("1.1-1+deb12")]);
        insta::assert_snapshot!(
            "dist_promote_one",
            story.shown(&["repo", "promote", "hello", "1.1"])
        );
        insta::assert_snapshot!("dist_show", story.shown(&["repo", "show", "hello"]));
        insta::assert_snapshot!(
            "dist_show_json",
            story.shown(&["--format", "json", "repo", "show", "hello"])
        );
        insta::assert_snapshot!(
            "dist_list_staging",
            story.shown(&["repo", "list", "staging"])
        );
        insta::assert_snapshot!(
            "dist_rollback_refused",
            story.shown(&["repo", "rollback", "hello", "staging"])
        );
        insta::assert_snapshot!(
            "dist_rollback_json",
            story.shown(&[
                "--format", "json", "repo", "rollback", "hello", "staging", "--dist", "bookworm"
            ])
        );
        insta::assert_snapshot!("dist_history", story.shown(&["repo", "history"]));
        insta::assert_snapshot!(
            "dist_history_json",
            story.shown(&["--format", "json", "repo", "history"])
        );
        insta::assert_snapshot!(
            "dist_sources",
            story.shown(&[
                "repo",
                "sources",
                "staging",
                "--dist",
                "trixie",
                "--url",
                "http://repo.example:8080",
                "--app",
                "hello"
            ])
        );
        insta::assert_snapshot!(
            "dist_sources_json",
            story.shown(&[
                "--format",
                "json",
                "repo",
                "sources",
                "staging",
                "--dist",
                "trixie",
                "--url",
                "http://repo.example:8080"
            ])
        );
        insta::assert_snapshot!("dist_verify", story.shown(&["repo", "verify"]));
        insta::assert_snapshot!(
            "dist_promote_refused",
            story.shown(&[
                "repo",
                "promote",
                "hello",
                "1.0-1+deb12",
                "--dist",
                "trixie"
            ])
        );
        insta::assert_snapshot!(
            "dist_unknown",
            story.shown(&["repo", "sources", "staging", "--dist", "buster"])
        );
    });
}

/// A `command` build that strips (with a file that has no build-id), its JSON, and the
/// first errors of the keys that go with it: a `[files] keep` group that does not exist,
/// a `node` application without package.json. Sizes and hashes are filtered: they come
/// from the machine's gcc.
#[test]
fn stripped_build_output_and_node_errors() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut settings = settings(temp.path());
    settings.add_filter(r"\(\d+ bytes\)", "([SIZE] bytes)");
    settings.add_filter(r#""size": \d+"#, r#""size": [SIZE]"#);
    settings.add_filter(r#""sha256": "[0-9a-f]{64}""#, r#""sha256": "[SHA256]""#);
    settings.add_filter(
        r"_(amd64|arm64|i386|armhf|ppc64el|s390x|riscv64)\.deb",
        "_[ARCH].deb",
    );
    settings.add_filter(
        r#""architecture": "[a-z0-9]+""#,
        r#""architecture": "[ARCH]""#,
    );
    settings.bind(|| {
        let shown = |arguments: &[&str]| {
            let output = debstage()
                .args(arguments)
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .output()
                .expect("runs");
            crate::support::schema::check_output(arguments, &output);
            format!(
                "exit: {}\n--- stdout\n{}--- stderr\n{}",
                output.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        };
        let manifest = crate::strip::c_application(&temp.path().join("app"), "1.0", "");
        let manifest = manifest.display().to_string();
        let out = temp.path().join("out").display().to_string();
        let build = ["build", "--manifest", &manifest, "--out", &out];
        insta::assert_snapshot!("build_stripped", shown(&build));
        let mut json = vec!["--format", "json"];
        json.extend(build);
        insta::assert_snapshot!("build_stripped_json", shown(&json));

        let bad = crate::strip::c_application(
            &temp.path().join("bad"),
            "1.0",
            "[files]\nkeep = [\"crates\"]\n",
        );
        let bad = bad.display().to_string();
        insta::assert_snapshot!(
            "build_bad_keep",
            shown(&["build", "--manifest", &bad, "--out", &out])
        );

        let node = temp.path().join("node");
        std::fs::create_dir_all(&node).expect("mkdir");
        std::fs::write(
            node.join("debstage.toml"),
            "[package]\nname = \"nodeapp\"\nversion = \"1.0\"\n\
             maintainer = \"Test <test@example.com>\"\ndescription = \"Node greeting\"\n\
             [environment]\nkind = \"node\"\n",
        )
        .expect("write");
        let node_manifest = node.join("debstage.toml").display().to_string();
        insta::assert_snapshot!(
            "build_node_without_package_json",
            shown(&["build", "--manifest", &node_manifest, "--out", &out])
        );
    });
}

/// A control character or an overlong word in a command line of the manifest is refused
/// with the file, the key and what is allowed, in text and in JSON.
#[test]
fn manifest_command_lines_refuse_control_characters_and_long_words() {
    let story = Story::new();
    let (temp, app) = example("hello");
    let mut settings = settings(temp.path());
    settings.add_filter(&regex_escape(&story.root().display().to_string()), "[TEMP]");
    settings.bind(|| {
        let manifest = app.join("debstage.toml");
        let original = std::fs::read_to_string(&manifest).expect("manifest");
        let out = temp.path().join("out").display().to_string();
        let manifest_argument = manifest.display().to_string();
        let build = |text: String, json: bool| {
            std::fs::write(&manifest, text).expect("write");
            let mut arguments = vec!["build", "--manifest", &manifest_argument, "--out", &out];
            if json {
                arguments.splice(0..0, ["--format", "json"]);
            }
            story.shown(&arguments)
        };
        let tab = original.replace(
            "command = \"bin/hello --greeting Hello\"",
            "command = \"bin/hello\\t--greeting Hello\"",
        );
        insta::assert_snapshot!("manifest_command_tab", build(tab.clone(), false));
        insta::assert_snapshot!("manifest_command_tab_json", build(tab, true));
        let newline = original.replace(
            "health = { command = \"bin/healthcheck\"",
            "health = { command = \"bin/healthcheck\\nrm -rf /\"",
        );
        insta::assert_snapshot!("manifest_health_newline", build(newline, false));
        let long = original.replace(
            "activate = \"hooks/activate\"",
            &format!("activate = \"hooks/activate {}\"", "x".repeat(70_000)),
        );
        insta::assert_snapshot!("manifest_hook_long_word", build(long, false));
    });
}

/// `repo key`: the keys in text and JSON, a second key added, the first retired, and the
/// refusals a user meets first.
#[test]
fn signing_keys_in_text_and_json() {
    let story = Story::new();
    let _guard = settings(story.root()).bind_to_scope();
    insta::assert_snapshot!("repo_key_list", story.shown(&["repo", "key", "list"]));
    insta::assert_snapshot!(
        "repo_key_list_json",
        story.shown(&["--format", "json", "repo", "key", "list"])
    );
    insta::assert_snapshot!("repo_key_add", story.shown(&["repo", "key", "add"]));
    let listed: serde_json::Value =
        serde_json::from_str(&story.ok(&["--format", "json", "repo", "key", "list"]))
            .expect("JSON");
    let first = listed["keys"][0]["fingerprint"]
        .as_str()
        .expect("a fingerprint")
        .to_string();
    insta::assert_snapshot!(
        "repo_key_retire_json",
        story.shown(&["--format", "json", "repo", "key", "retire", &first])
    );
    insta::assert_snapshot!(
        "repo_key_list_retired",
        story.shown(&["repo", "key", "list"])
    );
    insta::assert_snapshot!(
        "repo_key_retire_refused",
        story.shown(&["repo", "key", "retire", &first])
    );
    insta::assert_snapshot!(
        "repo_key_retire_unknown",
        story.shown(&["repo", "key", "retire", "0123456789ABCDEF"])
    );
}

/// One snapshot per error class of the CLI contract (docs/json.md), in text and with
/// `--format json`, each with its exit code: a command line that is not valid, bad input,
/// a refusal that names the next step, the lock held, a file that cannot be read. (The
/// conflict, exit 4, is in `json_contract::errors_carry_their_kind_and_exit_code`.)
#[test]
fn every_error_class_in_text_and_json() {
    let story = Story::new();
    let manifest = |version: &str| {
        story
            .out
            .join(format!("hello_{version}-1.build.json"))
            .display()
            .to_string()
    };
    let (newer, older) = (manifest("1.1"), manifest("1.0"));
    let both = |name: &str, arguments: &[&str]| {
        insta::assert_snapshot!(format!("error_{name}_text"), story.shown(arguments));
        let mut json = vec!["--format", "json"];
        json.extend_from_slice(arguments);
        insta::assert_snapshot!(format!("error_{name}_json"), story.shown(&json));
    };
    let mut settings = settings(story.root());
    // How long the lock was waited for.
    settings.add_filter(r"after [0-9.]+(ns|µs|ms|s)\b", "after [DURATION]");
    settings.bind(|| {
        both("usage", &["repo", "promote"]);
        both("input", &["repo", "list", "prod"]);
        both("refusal", &["repo", "add", "staging", "--manifest", &newer]);
        let holder = crate::support::hold_repository_lock(&story.repo);
        both(
            "lock_held",
            &["repo", "--lock-timeout", "0", "add", "--manifest", &older],
        );
        drop(holder);
        // A file that cannot be read: a directory given as a package.
        let directory = story.root().join("not-a-package.deb");
        std::fs::create_dir(&directory).expect("directory");
        both(
            "io",
            &["repo", "add", "test", &directory.display().to_string()],
        );
    });
}
