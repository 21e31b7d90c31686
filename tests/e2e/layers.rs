//! Layered releases on a server with real apt (issue 21): a code-only release downloads
//! only its release package, a changed dependency brings a new layer, a rollback to a
//! kept release downloads nothing but the stage package, and autoremove keeps the layer
//! of the release a stage pointed to before.

use std::path::{Path, PathBuf};

use super::harness::{RepoServer, Server};
use crate::layers::{build_tally, file_of, write_tally};
use crate::support::stdout;

/// The packages apt downloaded, from its `Get:` lines (`Get:1 http://127.0.0.1:8080
/// production/main amd64 tally-1.1 all 1.1-1 [12.3 kB]` gives `tally-1.1`).
fn downloaded(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with("Get:"))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            // Get:N URL SUITE/COMPONENT ARCH PACKAGE PACKAGE-ARCH VERSION [SIZE]
            words.nth(4).map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Adds a build to the repository and promotes it to production.
fn release(repository: &RepoServer, manifest: &Path, version: &str) {
    repository.run(&["add", "--manifest", &manifest.to_string_lossy()]);
    for stage in ["staging", "production"] {
        repository.run(&["promote", "tally", version, "--to", stage]);
    }
}

/// Empties apt's archive cache, updates and installs `tally-production` (with `extra`
/// arguments); gives the names of the packages apt downloaded and its output.
fn install_production(server: &Server, extra: &[&str]) -> (Vec<String>, String) {
    server.apt_get_ok(&["clean"]);
    server.apt_get_ok(&["update"]);
    let mut arguments = vec!["install"];
    arguments.extend_from_slice(extra);
    arguments.push("tally-production");
    let text = stdout(&server.apt_get_ok(&arguments));
    (downloaded(&text), text)
}

/// The tabulate version the production release imports.
fn production_tabulate(server: &Server) -> String {
    let output = server.run_ok(
        "/opt/tally/production/bin/python",
        &["-c", "import tabulate; print(tabulate.__version__)"],
    );
    stdout(&output).trim().to_string()
}

/// Runs the production release's `tally` and checks that it prints `expected` (its
/// version and marker).
fn assert_production_prints(server: &Server, expected: &str) {
    let output = server.run_ok("/opt/tally/production/bin/tally", &[]);
    let text = stdout(&output);
    assert!(text.contains(expected), "{text}");
}

#[test]
fn layers_1_code_only_releases_download_only_their_code_and_rollback_downloads_nothing() {
    let Some(mut server) = Server::new("layers") else {
        return;
    };
    // python3.11 comes from the Debian mirror.
    server.use_mirror();
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("tally");
    let out = temp.path().join("out");
    let mut manifests: Vec<PathBuf> = Vec::new();
    let mut layers = Vec::new();
    for (version, tabulate, epoch) in [
        ("1.0", "0.9.0", "1700000000"),
        ("1.1", "0.9.0", "1700001000"),
        ("1.2", "0.8.10", "1700002000"),
    ] {
        write_tally(&app, version, tabulate, &format!("m{version}"), "");
        let (document, _) = build_tally(&app.join("debstage.toml"), &out, epoch);
        let layer = file_of(&document, "layer").expect("a layer");
        layers.push(layer.split('_').next().expect("name").to_string());
        manifests.push(out.join(format!("tally_{version}-1.build.json")));
    }
    let repo_temp = tempfile::tempdir().expect("temporary directory");
    let repository = RepoServer::start(&repo_temp.path().join("repo"), "test,staging,production");

    // 1.0: the release, its layer and the stage package.
    release(&repository, &manifests[0], "1.0");
    server.subscribe(&repository, "production", "tally");
    let (downloads, text) = install_production(&server, &[]);
    assert!(downloads.contains(&layers[0]), "{text}");
    assert_production_prints(&server, "tally  v1.0  m1.0");

    // 1.1, code only: the release package and the stage package, no layer.
    release(&repository, &manifests[1], "1.1");
    let (downloads, text) = install_production(&server, &[]);
    assert_eq!(downloads, ["tally-1.1", "tally-production"], "{text}");
    assert_eq!(server.link("/opt/tally/production").as_deref(), Some("1.1"));
    assert_production_prints(&server, "tally  v1.1  m1.1");

    // 1.2 changes a dependency: a new layer comes with it.
    release(&repository, &manifests[2], "1.2");
    let (downloads, text) = install_production(&server, &[]);
    assert_eq!(
        downloads,
        ["tally-1.2", layers[2].as_str(), "tally-production"],
        "{text}"
    );
    assert_production_prints(&server, "tally  v1.2  m1.2");
    // The dependency comes from the new layer.
    assert_eq!(production_tabulate(&server), "0.8.10");

    // autoremove keeps the release production pointed to before (1.1) and so its layer;
    // 1.0 goes.
    let output = server.apt_get_ok(&["autoremove", "--purge"]);
    assert!(
        server.installed_version("tally-1.0").is_none(),
        "{}",
        stdout(&output)
    );
    assert!(server.installed_version("tally-1.1").is_some());
    assert!(server.installed_version(&layers[1]).is_some());

    // Rollback to 1.1: only the stage package is downloaded.
    repository.run(&["rollback", "tally", "production"]);
    let (downloads, text) = install_production(&server, &["--allow-downgrades"]);
    assert_eq!(downloads, ["tally-production"], "{text}");
    assert_eq!(server.link("/opt/tally/production").as_deref(), Some("1.1"));
    assert_production_prints(&server, "tally  v1.1  m1.1");
    assert_eq!(production_tabulate(&server), "0.9.0");
}

/// Builds the native node application at `version` for bookworm (its nodejs 18 and
/// node-gyp in the build root) into `out`; gives the build manifest's path and the
/// layer's package name.
fn build_nodeapp_for_bookworm(
    app: &Path,
    out: &Path,
    version: &str,
    dotty: bool,
    epoch: &str,
) -> (PathBuf, String) {
    let manifest = crate::layers::write_nodeapp(
        app,
        version,
        &format!("m{version}"),
        dotty,
        "[build]\npackages = [\"node-gyp\", \"libnode-dev\", \"g++\", \"make\"]\n",
    );
    let output = crate::support::run_ok(
        crate::support::debstage()
            .args(["--format", "json", "build", "--manifest"])
            .arg(&manifest)
            .arg("--out")
            .arg(out)
            .args(["--target", "bookworm"])
            .env("XDG_CACHE_HOME", crate::build_target::cache_home())
            .env("SOURCE_DATE_EPOCH", epoch),
    );
    let document: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("build prints its manifest as JSON");
    let layer = file_of(&document, "layer").expect("a layer");
    let build_manifest = std::fs::read_dir(out)
        .expect("out")
        .map(|entry| entry.expect("entry").path())
        .find(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&format!("nodeapp_{version}-")) && name.ends_with(".build.json")
        })
        .expect("a build manifest");
    (
        build_manifest,
        layer.split('_').next().expect("name").to_string(),
    )
}

#[test]
fn layers_2_a_node_app_with_a_native_module_shares_its_layer_and_rolls_back_without_download() {
    if !crate::node::node_tools_present("node layers e2e") {
        return;
    }
    let Some(mut server) = Server::new("node-layers") else {
        return;
    };
    // nodejs comes from the Debian mirror.
    server.use_mirror();
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("nodeapp");
    let out = temp.path().join("out");
    let mut manifests = Vec::new();
    let mut layers = Vec::new();
    for (version, dotty, epoch) in [
        ("1.0", true, "1700000000"),
        ("1.1", true, "1700001000"),
        ("1.2", false, "1700002000"),
    ] {
        let (manifest, layer) = build_nodeapp_for_bookworm(&app, &out, version, dotty, epoch);
        manifests.push(manifest);
        layers.push(layer);
    }
    assert_eq!(
        layers[0], layers[1],
        "a code-only release changed the layer"
    );
    assert_ne!(layers[1], layers[2], "a changed dependency kept the layer");
    let repo_temp = tempfile::tempdir().expect("temporary directory");
    let repository = RepoServer::start(&repo_temp.path().join("repo"), "test");
    let install_test = |extra: &[&str]| {
        server.apt_get_ok(&["clean"]);
        server.apt_get_ok(&["update"]);
        let mut arguments = vec!["install", "--no-install-recommends"];
        arguments.extend_from_slice(extra);
        arguments.push("nodeapp-test");
        let text = stdout(&server.apt_get_ok(&arguments));
        (downloaded(&text), text)
    };
    let prints = |expected: &str| {
        let output = server.run_ok("sh", &["-c", "cd /opt/nodeapp/test && node server.js"]);
        assert_eq!(stdout(&output), expected);
    };

    repository.run(&["add", "--manifest", &manifests[0].to_string_lossy()]);
    server.subscribe_to(&repository, "test", Some("bookworm"), "nodeapp");
    let (downloads, text) = install_test(&[]);
    assert!(downloads.contains(&layers[0]), "{text}");
    prints("native hello 42 m1.0\n");

    // 1.1, code only: the release package and the stage package.
    repository.run(&["add", "--manifest", &manifests[1].to_string_lossy()]);
    let (downloads, text) = install_test(&[]);
    assert_eq!(downloads, ["nodeapp-1.1", "nodeapp-test"], "{text}");
    prints("native hello 42 m1.1\n");

    // 1.2 drops a dependency: a new layer.
    repository.run(&["add", "--manifest", &manifests[2].to_string_lossy()]);
    let (downloads, text) = install_test(&[]);
    assert_eq!(
        downloads,
        ["nodeapp-1.2", layers[2].as_str(), "nodeapp-test"],
        "{text}"
    );
    prints("native hello m1.2\n");

    // Rollback to 1.1: its release and layer are still installed, nothing but the stage
    // package is downloaded.
    repository.run(&["rollback", "nodeapp", "test"]);
    let (downloads, text) = install_test(&["--allow-downgrades"]);
    assert_eq!(downloads, ["nodeapp-test"], "{text}");
    assert_eq!(server.link("/opt/nodeapp/test").as_deref(), Some("1.1"));
    prints("native hello 42 m1.1\n");
    assert!(server.installed_version(&layers[0]).is_some());
}

/// piuparts installs and purges a layered release (its layer, release and stage
/// package), and upgrades to it from an unlayered release in the production suite.
#[test]
fn piuparts_passes_a_layered_release_and_the_upgrade_from_an_unlayered_one() {
    if !super::harness::can_run("piuparts layers", &[("piuparts", "piuparts")]) {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("tally");
    let out = temp.path().join("out");
    write_tally(&app, "1.0", "0.9.0", "one", "\n[layers]\nenabled = false\n");
    let (unlayered, _) = build_tally(&app.join("debstage.toml"), &out, "1700000000");
    assert_eq!(file_of(&unlayered, "layer"), None);
    write_tally(&app, "1.1", "0.9.0", "two", "");
    let (layered, _) = build_tally(&app.join("debstage.toml"), &out, "1700001000");
    let repo_temp = tempfile::tempdir().expect("temporary directory");
    let repository = RepoServer::start(&repo_temp.path().join("repo"), "test,staging,production");
    release(&repository, &out.join("tally_1.0-1.build.json"), "1.0");
    let file = |role: &str| out.join(file_of(&layered, role).expect(role));
    let stage = out.join("tally-production_1.1-1_all.deb");
    super::piuparts::piuparts(
        &repository.url(),
        &[&file("layer"), &file("payload"), &stage],
    );
}
