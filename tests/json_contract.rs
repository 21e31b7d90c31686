//! The JSON contract, version 1 (docs/json.md): every command run with `--format json` on
//! the example carried through its stages prints one object that follows its schema in
//! `docs/schemas/` (the Story checks each output), with the facts configuration
//! management relies on; no-ops print their result with `"changed": false`; errors are
//! one object on stderr with the exit code of their kind.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::snapshots::Story;
use crate::support::{project_root, schema};

/// Runs a command with `--format json` in the story's repository; returns its stdout as
/// JSON, already checked against its schema.
fn json(story: &Story, arguments: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(arguments);
    let text = story.ok(&all);
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{all:?}: {error}\n{text}"))
}

/// Runs a command with `--format json` that must fail with `code`; returns the error
/// object from stderr, already checked against the error schema.
fn error(story: &Story, code: i32, arguments: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(arguments);
    let output = story.output(&all);
    assert_eq!(
        output.status.code(),
        Some(code),
        "{all:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stderr).expect("one JSON object on stderr")
}

#[test]
fn every_schema_is_a_valid_draft_2020_12_schema_and_documented() {
    let documentation =
        std::fs::read_to_string(project_root().join("docs/json.md")).expect("docs/json.md");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(project_root().join("docs/schemas")).expect("docs/schemas") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".schema.json"))
            .unwrap_or_else(|| panic!("{}: not a .schema.json file", path.display()))
            .to_string();
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        if let Err(error) = jsonschema::meta::validate(&schema) {
            panic!("{}: {error}", path.display());
        }
        assert!(
            documentation.contains(&format!("schemas/{name}.schema.json")),
            "docs/json.md does not name schemas/{name}.schema.json"
        );
        names.insert(name);
    }
    let expected: BTreeSet<String> = [
        "build",
        "build-targets",
        "dashboard-status",
        "error",
        "repo-add",
        "repo-diff",
        "repo-export-key",
        "repo-gc",
        "repo-history",
        "repo-key",
        "repo-key-export",
        "repo-list",
        "repo-promote",
        "repo-remove",
        "repo-rollback",
        "repo-show",
        "repo-sources",
        "repo-verify",
        "repo-publish-target",
        "repo-verify-target",
        "warnings",
    ]
    .iter()
    .map(|name| name.to_string())
    .collect();
    assert_eq!(
        names, expected,
        "a schema per JSON output, each tested here"
    );
}

#[test]
fn every_command_prints_one_versioned_object() {
    let story = Story::new();
    let (temp, app) = crate::support::example("hello");
    let out = temp.path().join("out").display().to_string();
    let manifest = app.join("debstage.toml").display().to_string();

    let built = json(
        &story,
        &[
            "build",
            "--manifest",
            &manifest,
            "--out",
            &out,
            "--compress",
            "gzip",
            "--version",
            "1.0",
        ],
    );
    assert_eq!(built["schema_version"], 1);
    assert_eq!(built["debian_version"], "1.0-1");
    assert_eq!(
        built["manifest"],
        format!("{out}/hello_1.0-1.build.json"),
        "{built}"
    );

    // Adding what is present changes nothing and says so.
    let added = json(
        &story,
        &[
            "repo",
            "add",
            "--manifest",
            &format!("{out}/hello_1.0-1.build.json"),
        ],
    );
    assert_eq!(added["changed"], false, "{added}");
    assert_eq!(added["stage"], "test");

    let listed = json(&story, &["repo", "list"]);
    assert_eq!(listed["stage"], Value::Null);
    // Eight of hello's and the keyring package, which every suite lists.
    assert_eq!(listed["packages"].as_array().map(Vec::len), Some(9));
    assert_eq!(listed["keyring"]["version"], "1", "{listed}");
    let production = json(&story, &["repo", "list", "production"]);
    assert_eq!(production["stage"], "production");

    let history = json(&story, &["repo", "history", "hello"]);
    assert_eq!(history["app"], "hello");
    assert_eq!(history["entries"][0]["action"], "add");

    let verified = json(&story, &["repo", "verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(
        verified["package_count"], 9,
        "hello's eight and the keyring package"
    );

    // The key as a server gets it, the same in export-key and sources.
    let key = json(&story, &["repo", "export-key"]);
    let armored = story.ok(&["repo", "export-key"]);
    assert_eq!(key["armored"], armored.as_str());
    assert_eq!(
        key["keyring_path_on_server"],
        "/usr/share/keyrings/acme-archive-keyring.gpg"
    );
    let binary = story.command(&["--format", "json", "repo", "export-key", "--binary"]);
    let binary = crate::support::run_ok(&mut { binary }).stdout;
    assert_eq!(
        binary,
        std::fs::read(story.repo.join("acme.gpg")).expect("acme.gpg"),
        "--binary prints the keyring whatever the format"
    );

    let sources = json(
        &story,
        &[
            "repo",
            "sources",
            "production",
            "--url",
            "http://repo.example:8080/",
            "--app",
            "hello",
        ],
    );
    assert_eq!(
        sources["uris"],
        serde_json::json!(["http://repo.example:8080"])
    );
    assert_eq!(sources["suites"], serde_json::json!(["production"]));
    assert_eq!(sources["components"], serde_json::json!(["main"]));
    assert_eq!(
        sources["signed_by"],
        "/usr/share/keyrings/acme-archive-keyring.gpg"
    );
    assert_eq!(sources["key"], key_without_version(&key));
    assert_eq!(
        sources["path"],
        "/etc/apt/sources.list.d/acme-production.sources"
    );
    assert_eq!(
        sources["stage_packages"],
        serde_json::json!(["hello-production"])
    );
    // The text is the same file as in text mode.
    let text = story.ok(&[
        "repo",
        "sources",
        "production",
        "--url",
        "http://repo.example:8080/",
        "--app",
        "hello",
    ]);
    assert!(
        text.contains(sources["text"].as_str().expect("text")),
        "{text}\n{sources}"
    );
}

fn key_without_version(key: &Value) -> Value {
    let mut key = key.clone();
    if let Some(fields) = key.as_object_mut() {
        fields.remove("schema_version");
    }
    key
}

/// Per stage, what a server pins and checks: the stage package's version the suite
/// holds, the current version, its upstream version and the release directory the link
/// points to; an empty stage has the same fields, null.
#[test]
fn show_gives_what_a_server_pins_and_checks() {
    let story = Story::new();
    let shown = json(&story, &["repo", "show", "hello"]);
    let production = &shown["stages"][2];
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host name");
    assert_eq!(
        production,
        &serde_json::json!({
            "stage": "production",
            "distribution": null,
            "suite": "production",
            "stage_package": "hello-production",
            "installable": ["1.0-1"],
            "current": "1.0-1",
            "provenance": {
                "commit": null,
                "dirty": null,
                "source_date": 1700000000,
                "branch": null,
                "build_host": host.trim(),
                "debstage_version": env!("CARGO_PKG_VERSION"),
                "target": null,
            },
            "upstream": "1.0",
            "link": "/opt/hello/production",
            "link_target": "/opt/hello/1.0",
            "listed": ["1.0-1"],
        })
    );
    assert_eq!(
        shown["stages"][0]["installable"],
        serde_json::json!(["1.1-1"])
    );

    // A second repository where only test has the app.
    let other = story.root().join("other");
    let other_arg = other.display().to_string();
    story.ok(&["repo", "--repo", &other_arg, "init", "--arch", "amd64"]);
    let manifest = story
        .out
        .join("hello_1.0-1.build.json")
        .display()
        .to_string();
    story.ok(&["repo", "--repo", &other_arg, "add", "--manifest", &manifest]);
    let shown = json(&story, &["repo", "--repo", &other_arg, "show", "hello"]);
    assert_eq!(
        shown["stages"][2],
        serde_json::json!({
            "stage": "production",
            "distribution": null,
            "suite": "production",
            "stage_package": "hello-production",
            "installable": [],
            "current": null,
            "provenance": null,
            "upstream": null,
            "link": "/opt/hello/production",
            "link_target": null,
            "listed": [],
        })
    );
}

/// Changes print what changed; no-ops print the same shape with `"changed": false`.
#[test]
fn changes_and_no_ops_print_their_result() {
    let story = Story::new();
    let again = json(
        &story,
        &["repo", "promote", "hello", "1.0", "--to", "production"],
    );
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["from"], "1.0-1");
    assert_eq!(again["to"], "1.0-1");

    let promoted = json(
        &story,
        &["repo", "promote", "hello", "1.1", "--to", "production"],
    );
    assert_eq!(promoted["changed"], true, "{promoted}");
    assert_eq!(promoted["skipped"], false);
    assert_eq!(promoted["from"], "1.0-1");
    assert_eq!(promoted["to"], "1.1-1");

    let rolled = json(&story, &["repo", "rollback", "hello", "production"]);
    assert_eq!(rolled["changed"], true, "{rolled}");
    assert_eq!(rolled["to"], "1.0-1");
    let again = json(
        &story,
        &["repo", "rollback", "hello", "production", "--to", "1.0"],
    );
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["to"], "1.0-1");

    // 1.0 is listed in test but test points to 1.1.
    let removed = json(&story, &["repo", "remove", "hello", "1.0", "test"]);
    assert_eq!(removed["stage"], "test", "{removed}");
    assert_eq!(removed["changed"], true);

    let collected = json(&story, &["repo", "gc", "--keep", "0"]);
    assert!(collected["changed"].is_boolean(), "{collected}");
}

/// Errors are one object on stderr; the exit code tells the kind.
#[test]
fn errors_carry_their_kind_and_exit_code() {
    let story = Story::new();
    let unknown = error(&story, 1, &["repo", "list", "prod"]);
    assert_eq!(unknown["error"]["kind"], "input", "{unknown}");
    assert_eq!(unknown["schema_version"], 1);

    // The same version built at another time has other bytes: a conflict (exit 4).
    let (temp, app) = crate::support::example("hello");
    let out = temp.path().join("out");
    let output = story
        .command(&[
            "--quiet",
            "build",
            "--manifest",
            &app.join("debstage.toml").display().to_string(),
            "--out",
            &out.display().to_string(),
            "--compress",
            "gzip",
            "--version",
            "1.0",
        ])
        .env("SOURCE_DATE_EPOCH", "1700000999")
        .output()
        .expect("build runs");
    assert!(output.status.success(), "{output:?}");
    let manifest = out.join("hello_1.0-1.build.json").display().to_string();
    let conflict = error(&story, 4, &["repo", "add", "--manifest", &manifest]);
    assert_eq!(conflict["error"]["kind"], "conflict", "{conflict}");
    schema::assert_valid("error", &conflict);
}

/// Runs debstage with `arguments` (no repository needed); gives the exit code and stderr.
fn run_plain(arguments: &[&str]) -> (Option<i32>, String) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = crate::support::debstage()
        .current_dir(directory.path())
        .args(arguments)
        .output()
        .expect("debstage runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A command line clap refuses is the user's input: exit 1, never 2 (which is kept for
/// bugs); with `--format json` anywhere on the line, stderr is the one error object.
#[test]
fn usage_errors_exit_1_and_are_one_object_in_json() {
    for arguments in [
        &["repo", "promote"][..],
        &["repo", "frobnicate"],
        &["build", "--no-such-option"],
        &["repo", "list", "--stage", "test"],
    ] {
        let (code, text) = run_plain(arguments);
        assert_eq!(code, Some(1), "{arguments:?}: {text}");
        assert!(text.starts_with("error: "), "{arguments:?}: {text}");
        let mut json = vec!["--format", "json"];
        json.extend_from_slice(arguments);
        let (code, text) = run_plain(&json);
        assert_eq!(code, Some(1), "{json:?}: {text}");
        let object: Value = serde_json::from_str(&text).unwrap_or_else(|error| {
            panic!("{json:?}: stderr is not one JSON object ({error}): {text}")
        });
        schema::assert_valid("error", &object);
        assert_eq!(object["error"]["kind"], "input", "{object}");
        // After the verb as well.
        let mut after = arguments.to_vec();
        after.extend_from_slice(&["--format", "json"]);
        let (code, text) = run_plain(&after);
        assert_eq!(code, Some(1), "{after:?}: {text}");
        let object: Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{after:?}: not one JSON object ({error}): {text}"));
        schema::assert_valid("error", &object);
    }
    assert_eq!(run_plain(&["--help"]).0, Some(0));
    assert_eq!(run_plain(&["--version"]).0, Some(0));
    assert_eq!(run_plain(&["repo", "promote", "--help"]).0, Some(0));
}

/// A command that succeeds with a warning prints it, with `--format json`, as the one
/// object on stderr; its progress messages are left out.
#[test]
fn warnings_are_the_one_object_on_stderr_in_json() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let key = directory.path().join("key.asc");
    // A secret key file others can read: `repo init --key` warns about it.
    let first = directory.path().join("first");
    let (code, text) = run_plain(&["repo", "--repo", &first.display().to_string(), "init"]);
    assert_eq!(code, Some(0), "{text}");
    std::fs::copy(first.join("private/signing-key.asc"), &key).expect("copy the key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("mode");
    let second = directory.path().join("second").display().to_string();
    let key = key.display().to_string();
    let (code, text) = run_plain(&[
        "--format", "json", "repo", "--repo", &second, "init", "--key", &key,
    ]);
    assert_eq!(code, Some(0), "{text}");
    let object: Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("stderr is not one JSON object ({error}): {text}"));
    schema::assert_valid("warnings", &object);
    assert!(
        object["warnings"][0]
            .as_str()
            .is_some_and(|warning| warning.contains("can be read by others")),
        "{object}"
    );
}
