//! The dashboard every publication writes at the published tree's root: `status.json`
//! pinned and checked against its schema, turned off by `[publish] dashboard = false`,
//! and `index.html` opened from `repo serve` in headless Chromium, whose DOM must show in
//! every cell the version, commit and promoter that `status.json` (the state) holds.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::fleet::Fleet;
use crate::snapshots::{settings, Story};
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
    status(&story.repo);
    let text = std::fs::read_to_string(story.repo.join("status.json")).expect("status.json");
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

/// Headless Chromium with a fresh profile, nothing fetched but the page.
fn chromium(profile: &Path) -> Command {
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
    command
}

/// The DOM Chromium built from the page at `url` (after its script ran), and a
/// screenshot of it at `screenshot`.
fn open(url: &str, screenshot: &Path) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let dom = run_ok(chromium(profile.path()).arg("--dump-dom").arg(url));
    let profile = tempfile::tempdir().expect("profile");
    run_ok(
        chromium(profile.path())
            .arg("--window-size=1000,1200")
            .arg(format!("--screenshot={}", screenshot.display()))
            .arg(url),
    );
    let png = std::fs::read(screenshot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG"),
        "{} is no PNG",
        screenshot.display()
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

/// Where a screenshot of a state goes (kept for a person to look at).
fn screenshot(name: &str) -> PathBuf {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&directory).expect("screenshot directory");
    directory.join(format!("{name}.png"))
}

#[test]
fn chromium_shows_every_cell_from_repo_serve() {
    if !tools_present(
        "dashboard::chromium_shows_every_cell_from_repo_serve",
        &[("chromium", "chromium"), ("git", "git")],
    ) {
        return;
    }
    // An empty repository.
    let (temp, _) = crate::support::example("hello");
    let empty = Story::at(temp);
    empty.ok(&["repo", "init", "--arch", "amd64", "--origin", "acme"]);
    empty.ok(&["repo", "publish"]);
    let served = serve(&empty);
    let dom = open(&format!("{}/", served.url()), &screenshot("empty"));
    assert!(dom.contains("id=\"matrix-empty\""), "{dom}");
    assert!(dom.contains("Nothing has happened yet."), "{dom}");
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
    let dom = open(&format!("{}/", served.url()), &screenshot("three-stages"));
    assert_cells_match(&dom, &state);
    // The filter's script ran: its label is shown.
    assert!(!element(&dom, "<label", ">").contains("hidden"), "{dom}");

    // After a rollback of staging.
    fleet.ok(&["repo", "rollback", "hello", "staging"]);
    let state = status(&fleet.story.repo);
    assert_eq!(state["applications"][0]["cells"][1]["version"], "1.0-1");
    assert_eq!(state["applications"][0]["cells"][1]["action"], "rollback");
    let dom = open(&format!("{}/", served.url()), &screenshot("after-rollback"));
    assert_cells_match(&dom, &state);
    assert!(
        element(&dom, "<tr data-app=\"hello\"><td>", "</tr>").contains("rollback"),
        "the newest history entry is the rollback:\n{dom}"
    );
}
