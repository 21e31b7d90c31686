//! The dashboard every publication writes at the published tree's root: `status.json`
//! pinned and checked against its schema, turned off by `[publish] dashboard = false`,
//! and `index.html` opened in headless Chromium from `repo serve` and from the website
//! endpoint of a Garage bucket the repository publishes to, whose DOM must show in every
//! cell the version, commit and promoter that `status.json` (the state) holds, the
//! differences between adjacent stages, and how to subscribe a server.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::fleet::Fleet;
use crate::snapshots::{settings, Story};
use crate::support::s3::S3;
use crate::support::served::Served;
use crate::support::{run_ok, schema, tools_present};

/// `status.json` of a repository, checked against its schema.
fn status(repo: &Path) -> Value {
    let path = repo.join("status.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let document: Value = serde_json::from_str(&text).expect("status.json is JSON");
    schema::assert_valid("dashboard-status", &document);
    document
}

#[test]
fn status_json_is_pinned_and_follows_its_schema() {
    let story = Story::new();
    // The file is compact JSON; the snapshot shows it indented (keys in name order).
    let text = serde_json::to_string_pretty(&status(&story.repo)).expect("JSON");
    settings(story.root()).bind(|| insta::assert_snapshot!("dashboard_status_json", text));
    let page = std::fs::read_to_string(story.repo.join("index.html")).expect("index.html");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    assert!(
        !page.contains("<script src") && !page.contains("<link"),
        "{page}"
    );
}

#[test]
fn the_dashboard_can_be_turned_off() {
    let story = Story::new();
    assert!(story.repo.join("index.html").is_file());
    let config = story.repo.join("debstage-repo.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("\n[publish]\ndashboard = false\n");
    std::fs::write(&config, text).expect("config");
    story.ok(&["repo", "publish"]);
    for name in ["index.html", "status.json"] {
        assert!(!story.repo.join(name).exists(), "{name} is still there");
    }
}

/// `repo serve` of the story's repository.
fn serve(story: &Story) -> Served {
    Served::start(|address| story.command(&["repo", "serve", "--addr", address]))
}

/// Whether Chromium and git (the fleet's commits) are here; fails under CI when not.
fn chromium_present(test: &str) -> bool {
    tools_present(test, &[("chromium", "chromium"), ("git", "git")])
}

/// Headless Chromium with a fresh profile, nothing fetched but the page; `host` (a
/// website endpoint's name) resolves to 127.0.0.1.
fn chromium(profile: &Path, host: Option<&str>) -> Command {
    let mut command = Command::new("chromium");
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    if let Some(host) = host {
        command.arg(format!("--host-resolver-rules=MAP {host} 127.0.0.1"));
    }
    command
}

/// The DOM Chromium built from the page at `url` (after its script ran), and a
/// screenshot of it at `screenshot`.
fn open(url: &str, screenshot: &Path, host: Option<&str>) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let dom = run_ok(chromium(profile.path(), host).arg("--dump-dom").arg(url));
    let profile = tempfile::tempdir().expect("profile");
    run_ok(
        chromium(profile.path(), host)
            .arg("--window-size=1000,1200")
            .arg(format!("--screenshot={}", screenshot.display()))
            .arg(url),
    );
    let png = std::fs::read(screenshot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} is no PNG of a page ({} bytes)",
        screenshot.display(),
        png.len()
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

/// The text between `start` (included) and the next `end` after it.
fn element<'a>(dom: &'a str, start: &str, end: &str) -> &'a str {
    let at = dom
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in the DOM:\n{dom}"));
    let rest = &dom[at..];
    &rest[..rest.find(end).map_or(rest.len(), |found| found + end.len())]
}

/// Checks that every cell of the matrix shows what `status.json` holds.
fn assert_cells_match(dom: &str, status: &Value) {
    for row in status["applications"].as_array().expect("applications") {
        let app = row["app"].as_str().expect("app");
        let row_html = element(dom, &format!("<tr data-app=\"{app}\""), "</tr>");
        for cell in row["cells"].as_array().expect("cells") {
            let stage = cell["stage"].as_str().expect("stage");
            let cell_html = element(row_html, &format!("<td data-stage=\"{stage}\""), "</td>");
            match cell["version"].as_str() {
                Some(version) => {
                    assert!(
                        cell_html.contains(&format!("<span class=\"version\">{version}</span>")),
                        "{app} {stage}: {version} not shown in {cell_html}"
                    );
                    let commit = cell["commit_short"].as_str().expect("a commit");
                    assert!(cell_html.contains(commit), "{app} {stage}: {cell_html}");
                    let promoter = format!(
                        "{} by {}",
                        cell["action"].as_str().expect("action"),
                        cell["promoted_by"].as_str().expect("promoter")
                    );
                    assert!(cell_html.contains(&promoter), "{app} {stage}: {cell_html}");
                }
                None => assert!(cell_html.contains("none"), "{app} {stage}: {cell_html}"),
            }
        }
    }
}

/// Where a screenshot of a state goes: `screenshots/` in the test's temp directory.
fn screenshot(root: &Path, name: &str) -> PathBuf {
    let directory = root.join("screenshots");
    std::fs::create_dir_all(&directory).expect("screenshot directory");
    directory.join(format!("{name}.png"))
}

/// Checks the stage pairs and the subscribe section against `status.json`: every pair
/// that differs is listed with both versions, every suite's `.sources` text names the
/// address the page was opened at (`base`, the page's script put it there), every
/// signing key's fingerprint is shown, and the keyring package has a section of its own
/// (version and keys) and no row.
fn assert_sections_match(dom: &str, status: &Value, base: &str) {
    for pair in status["differences"].as_array().expect("differences") {
        for difference in pair["applications"].as_array().expect("applications") {
            let app = difference["app"].as_str().expect("app");
            let side = |side: &str, stage: &str| {
                format!(
                    "{stage} {}",
                    difference[side]["version"].as_str().unwrap_or("none")
                )
            };
            let from = side("from", pair["from_stage"].as_str().expect("from"));
            let to = side("to", pair["to_stage"].as_str().expect("to"));
            let listed = dom
                .match_indices(&format!("<li data-app=\"{app}\">"))
                .map(|(at, _)| element(&dom[at..], "<li", "</li>"))
                .any(|item| item.contains(&from) && item.contains(&to));
            assert!(listed, "{app}: {from} -> {to} is not listed:\n{dom}");
        }
    }
    let subscribe = &status["subscribe"];
    let fingerprints = subscribe["fingerprints"].as_array().expect("fingerprints");
    assert!(!fingerprints.is_empty(), "{subscribe}");
    for fingerprint in fingerprints {
        let fingerprint = fingerprint.as_str().expect("a fingerprint");
        assert!(
            dom.contains(&format!("<code class=\"fingerprint\">{fingerprint}</code>")),
            "{fingerprint} not shown:\n{dom}"
        );
    }
    for suite in subscribe["suites"].as_array().expect("suites") {
        let name = suite["suite"].as_str().expect("suite");
        let text = element(
            dom,
            &format!("<pre class=\"sources\" data-suite=\"{name}\">"),
            "</pre>",
        );
        assert!(
            text.contains(&format!("URIs: {base}\n"))
                && text.contains(&format!("Suites: {name}\n")),
            "{name}: {text}"
        );
    }
    assert!(
        !dom.contains("REPOSITORY_URL"),
        "the script left the placeholder:\n{dom}"
    );
    // The keyring package: a section of its own with its version and keys, no row.
    let keyring = &status["keyring"];
    let package = keyring["package"].as_str().expect("the keyring package");
    let section = element(dom, "<p id=\"keyring\">", "</p>");
    assert!(
        section.contains(&format!("<code>{package}</code>"))
            && section.contains(&format!(
                "<span class=\"keyring-version\">{}</span>",
                keyring["version"].as_str().expect("version")
            )),
        "{section}"
    );
    for fingerprint in keyring["fingerprints"].as_array().expect("fingerprints") {
        let fingerprint = fingerprint.as_str().expect("a fingerprint");
        assert!(
            section.contains(&format!(
                "<code class=\"keyring-fingerprint\">{fingerprint}</code>"
            )),
            "{fingerprint} not in {section}"
        );
    }
    assert!(
        !dom.contains(&format!("data-app=\"{package}\"")),
        "the keyring package shows as an application:\n{dom}"
    );
}

#[test]
fn chromium_shows_every_cell_from_repo_serve() {
    if !chromium_present("dashboard::chromium_shows_every_cell_from_repo_serve") {
        return;
    }
    // An empty repository.
    let (temp, _) = crate::support::example("hello");
    let empty = Story::at(temp);
    empty.ok(&["repo", "init", "--arch", "amd64", "--origin", "acme"]);
    empty.ok(&["repo", "publish"]);
    let served = serve(&empty);
    let shot = screenshot(empty.root(), "empty");
    let dom = open(&format!("{}/", served.url()), &shot, None);
    assert!(dom.contains("id=\"matrix-empty\""), "{dom}");
    assert!(dom.contains("Nothing has happened yet."), "{dom}");
    assert_sections_match(&dom, &status(&empty.repo), &served.url());
    drop(served);

    // Three stages with three versions, each with its commit.
    let fleet = Fleet::new();
    let served = serve(&fleet.story);
    let state = status(&fleet.story.repo);
    let versions: Vec<&str> = state["applications"][0]["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|cell| cell["version"].as_str().expect("a version"))
        .collect();
    assert_eq!(versions, ["1.2-1", "1.1-1", "1.0-1"]);
    let shot = screenshot(fleet.root(), "three-stages");
    let dom = open(&format!("{}/", served.url()), &shot, None);
    assert_cells_match(&dom, &state);
    assert_eq!(
        state["differences"].as_array().map(Vec::len),
        Some(2),
        "{state}"
    );
    assert_sections_match(&dom, &state, &served.url());
    // The filter's script ran: its label is shown.
    assert!(!element(&dom, "<label", ">").contains("hidden"), "{dom}");

    // After a rollback of staging.
    fleet.ok(&["repo", "rollback", "hello", "staging"]);
    let state = status(&fleet.story.repo);
    assert_eq!(state["applications"][0]["cells"][1]["version"], "1.0-1");
    assert_eq!(state["applications"][0]["cells"][1]["action"], "rollback");
    let shot = screenshot(fleet.root(), "after-rollback");
    let dom = open(&format!("{}/", served.url()), &shot, None);
    assert_cells_match(&dom, &state);
    assert_sections_match(&dom, &state, &served.url());
    assert!(
        element(&dom, "<tr data-app=\"hello\"><td>", "</tr>").contains("rollback"),
        "the newest history entry is the rollback:\n{dom}"
    );
    let mut shots: Vec<String> = std::fs::read_dir(fleet.root().join("screenshots"))
        .expect("screenshots")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    shots.sort();
    assert_eq!(shots, ["after-rollback.png", "three-stages.png"]);
}

/// The same page published to a Garage bucket and opened from the bucket's website
/// endpoint (Garage's `[s3_web]`, `garage bucket website --allow`): the same DOM as
/// through `repo serve`.
#[test]
fn chromium_shows_the_dashboard_from_a_garage_website_endpoint() {
    if !chromium_present("dashboard::chromium_shows_the_dashboard_from_a_garage_website_endpoint") {
        return;
    }
    let Some(s3) = S3::garage("the dashboard on a Garage website endpoint") else {
        return;
    };
    let host = s3
        .http_host
        .clone()
        .expect("Garage serves a website endpoint");
    let fleet = Fleet::new();
    let config = fleet.story.repo.join("debstage-repo.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    // Garage ignores conditional writes: one writer, no lock object.
    text.push_str(&s3.target_toml("store", "fleet", "conditional_writes = false\n"));
    std::fs::write(&config, text).expect("config");
    let publish = |story: &Story| {
        let mut command = story.command(&["repo", "publish", "--target", "store"]);
        command.envs(s3.environment());
        run_ok(&mut command);
    };
    publish(&fleet.story);
    let base = format!("{}/fleet", s3.http_base);
    let state = status(&fleet.story.repo);
    let (code, _, body) = s3.get("fleet/status.json");
    assert_eq!(code, 200);
    let served: Value = serde_json::from_slice(&body).expect("status.json from the bucket");
    assert_eq!(served, state);
    let shot = screenshot(fleet.root(), "garage-three-stages");
    let dom = open(&format!("{base}/"), &shot, Some(&host));
    assert_cells_match(&dom, &state);
    assert_sections_match(&dom, &state, &base);

    fleet.ok(&["repo", "rollback", "hello", "staging"]);
    publish(&fleet.story);
    let state = status(&fleet.story.repo);
    let shot = screenshot(fleet.root(), "garage-after-rollback");
    let dom = open(&format!("{base}/index.html"), &shot, Some(&host));
    assert_cells_match(&dom, &state);
    assert_sections_match(&dom, &state, &base);
}

/// A plain package (no build manifest: its application is its name) made by dpkg-deb.
fn plain_deb(dir: &Path, name: &str, version: &str, depends: &str) -> String {
    let tree = dir.join(format!("{name}_{version}"));
    let control = tree.join("DEBIAN");
    std::fs::create_dir_all(&control).expect("tree");
    std::fs::create_dir_all(tree.join("usr/share/doc").join(name)).expect("tree");
    std::fs::write(
        tree.join("usr/share/doc").join(name).join("README"),
        version,
    )
    .expect("file");
    std::fs::write(
        control.join("control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: Ops \
             <ops@example.com>\nDepends: {depends}\nDescription: plain package {name}\n"
        ),
    )
    .expect("control");
    let deb = dir.join(format!("{name}_{version}_amd64.deb"));
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&tree)
        .arg(&deb)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("dpkg-deb runs");
    assert!(status.success(), "dpkg-deb --build {}", tree.display());
    deb.display().to_string()
}

#[test]
fn each_publication_renders_what_changed_as_a_full_render_would() {
    // The parts of unchanged applications come from the cache of the publication before;
    // after every command the files must be byte for byte what a publication with no
    // cache writes from the whole state.
    let story = Story::new();
    let debs = story.root().join("plain");
    let deb = |name: &str, version: &str, depends: &str| plain_deb(&debs, name, version, depends);
    let steps: Vec<Vec<String>> = vec![
        vec![
            "repo".into(),
            "add".into(),
            "test".into(),
            deb("alpha", "1.0-1", "libc6"),
        ],
        vec![
            "repo".into(),
            "add".into(),
            "test".into(),
            deb("beta", "2.0-1", "libc6"),
        ],
        vec![
            "repo".into(),
            "promote".into(),
            "alpha".into(),
            "1.0".into(),
            "--to".into(),
            "staging".into(),
        ],
        vec![
            "repo".into(),
            "add".into(),
            "test".into(),
            deb("alpha", "1.1-1", "libc6, curl"),
        ],
        vec![
            "repo".into(),
            "promote".into(),
            "alpha".into(),
            "1.1".into(),
            "--to".into(),
            "staging".into(),
        ],
        vec![
            "repo".into(),
            "promote".into(),
            "hello".into(),
            "1.1".into(),
            "--to".into(),
            "production".into(),
        ],
        vec![
            "repo".into(),
            "rollback".into(),
            "alpha".into(),
            "staging".into(),
        ],
        vec![
            "repo".into(),
            "rollback".into(),
            "hello".into(),
            "production".into(),
        ],
        vec![
            "repo".into(),
            "add".into(),
            "test".into(),
            deb("beta", "2.1-1", "libc6"),
        ],
        vec!["repo".into(), "remove".into(), "beta".into(), "2.0".into()],
        vec!["repo".into(), "gc".into(), "--keep".into(), "1".into()],
        vec![
            "repo".into(),
            "add".into(),
            "test".into(),
            deb("gamma", "0.1-1", "libc6"),
        ],
    ];
    let files = |repo: &Path| {
        ["index.html", "status.json"].map(|name| std::fs::read(repo.join(name)).expect(name))
    };
    let cache = story.repo.join("cache").join("dashboard");
    let legacy = vec![
        "repo".to_string(),
        "promote".into(),
        "gamma".into(),
        "0.1".into(),
        "--to".into(),
        "staging".into(),
    ];
    for step in steps.iter().chain([&legacy]) {
        if step == &legacy {
            // A state of schema version 11 has no change tokens: the upgrade gives every
            // application one, which no cached part carries.
            let connection =
                rusqlite::Connection::open(story.repo.join("state.db")).expect("state");
            let triggers: Vec<String> = connection
                .prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'")
                .and_then(|mut statement| {
                    statement
                        .query_map([], |row| row.get(0))?
                        .collect::<rusqlite::Result<_>>()
                })
                .expect("triggers");
            assert_eq!(triggers.len(), 12, "{triggers:?}");
            for trigger in triggers {
                connection
                    .execute_batch(&format!("DROP TRIGGER {trigger};"))
                    .expect("dropped");
            }
            connection
                .execute_batch("DROP TABLE app_changes; PRAGMA user_version = 11;")
                .expect("made version 11");
        }
        let arguments: Vec<&str> = step.iter().map(String::as_str).collect();
        story.ok(&arguments);
        assert!(cache.is_file(), "no dashboard cache after {step:?}");
        let incremental = files(&story.repo);
        std::fs::remove_file(&cache).expect("cache removed");
        story.ok(&["repo", "publish"]);
        let full = files(&story.repo);
        for (index, name) in ["index.html", "status.json"].iter().enumerate() {
            assert!(
                incremental[index] == full[index],
                "{name} after {step:?} differs from a full render:\n{}\n---\n{}",
                String::from_utf8_lossy(&incremental[index]),
                String::from_utf8_lossy(&full[index])
            );
        }
    }
    let page = String::from_utf8_lossy(&files(&story.repo)[0]).into_owned();
    // Each row and item on lines of their own, as the page's one template wrote them.
    assert!(
        !page.contains("</tr><tr") && !page.contains("</li><li"),
        "{page}"
    );
    for app in ["alpha", "beta", "gamma", "hello"] {
        assert!(
            page.contains(&format!("<tr data-app=\"{app}\"")),
            "{app}: {page}"
        );
    }
}
