//! Layered releases on a booted server (systemd as PID 1) with real apt (issue 21): a
//! code-only release downloads only its release package, a changed dependency brings a
//! new layer, a rollback to a kept release downloads nothing but the stage package, and
//! autoremove keeps the layer of the release a stage pointed to before (`[stages] keep`).
//! After each step the stage's service runs from the expected release and its dependencies
//! load from the expected layer.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::harness::{free_port, http_get, RepoServer, Server};
use super::systemd::main_directory;
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

/// The packages in apt's archive cache (`/var/cache/apt/archives/NAME_VERSION_ARCH.deb`).
fn archived(server: &Server) -> Vec<String> {
    let directory = server.path("/var/cache/apt/archives");
    let mut names: Vec<String> = fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".deb"))
        .filter_map(|name| name.split('_').next().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Empties apt's archive cache, updates and installs `package` (with `extra` arguments);
/// gives the names of the packages apt downloaded, which its archive cache confirms, and
/// its output.
fn install(server: &Server, package: &str, extra: &[&str]) -> (Vec<String>, String) {
    server.apt_get_ok(&["clean"]);
    server.apt_get_ok(&["update"]);
    let mut arguments = vec!["install", "--no-install-recommends"];
    arguments.extend_from_slice(extra);
    arguments.push(package);
    let text = stdout(&server.apt_get_ok(&arguments));
    let names = downloaded(&text);
    assert_eq!(archived(server), names, "{text}");
    (names, text)
}

/// Adds a build to the repository and promotes it to production.
fn release(repository: &RepoServer, manifest: &Path, version: &str) {
    repository.run(&["add", "--manifest", &manifest.to_string_lossy()]);
    for stage in ["staging", "production"] {
        repository.run(&["promote", "tally", version, "--to", stage]);
    }
}

/// The key of a layer package (`tally-layer-<key>` gives `<key>`).
fn key_of(layer: &str) -> &str {
    layer.rsplit('-').next().expect("a layer package name")
}

/// The body of `GET /` on 127.0.0.1:`port` (the container shares the host's network),
/// waiting up to 20 s for the service to listen.
fn answer(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = http_get(port, "/");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body).into_owned()
}

/// Gives the service `port` through the stage's local environment file
/// (`/etc/<app>/<stage>.env`, read by its unit).
fn set_port(server: &Server, app: &str, stage: &str, port: u16) {
    let directory = server.path(&format!("/etc/{app}"));
    fs::create_dir_all(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()));
    let file = directory.join(format!("{stage}.env"));
    fs::write(&file, format!("PORT={port}\n"))
        .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
}

/// The tally service (its console script `tally-serve`, a short settle) and one kept
/// release, as extra manifest lines.
const TALLY_SERVICE: &str =
    "\n[service]\ncommand = \"bin/tally-serve\"\nsettle = \"1s\"\n\n[stages]\nkeep = 1\n";

/// Checks that production's service runs `version` (its main process's directory), that
/// it answers with that release's row and `tabulate` from `layer` (a package in 0.9.0, a
/// module in 0.8.10), and that `pip check` passes inside the release.
fn assert_tally_serves(server: &Server, port: u16, version: &str, tabulate: &str, layer: &str) {
    assert_eq!(
        main_directory(server, "tally-production.service"),
        format!("/opt/tally/{version}")
    );
    let body = answer(port);
    assert!(
        body.contains(&format!("tally  v{version}  m{version}")),
        "{body}"
    );
    let from = format!(
        "{tabulate} /opt/tally/.layers/{}/site-packages/tabulate",
        key_of(layer)
    );
    assert!(body.contains(&from), "{body}");
    let python = format!("/opt/tally/{version}/bin/python");
    let output = server.run_ok(
        "/usr/bin/python3",
        &[
            "-m",
            "pip",
            "--disable-pip-version-check",
            "--python",
            &python,
            "check",
        ],
    );
    assert_eq!(stdout(&output), "No broken requirements found.\n");
}

#[test]
fn layers_1_code_only_releases_download_only_their_code_and_rollback_downloads_nothing() {
    let Some(mut server) = Server::booted("layers") else {
        return;
    };
    // python3.11 and pip (for `pip check`) come from the Debian mirror.
    server.use_mirror();
    server.apt_get_ok(&["update"]);
    server.apt_get_ok(&["install", "--no-install-recommends", "python3-pip"]);
    let port = free_port();
    set_port(&server, "tally", "production", port);
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
        write_tally(
            &app,
            version,
            tabulate,
            &format!("m{version}"),
            TALLY_SERVICE,
        );
        let (document, _) = build_tally(&app.join("debstage.toml"), &out, epoch);
        let layer = file_of(&document, "layer").expect("a layer");
        layers.push(layer.split('_').next().expect("name").to_string());
        manifests.push(out.join(format!("tally_{version}-1.build.json")));
    }
    assert_eq!(
        layers[0], layers[1],
        "a code-only release changed the layer"
    );
    assert_ne!(layers[1], layers[2], "a changed dependency kept the layer");
    let repo_temp = tempfile::tempdir().expect("temporary directory");
    let repository = RepoServer::start(&repo_temp.path().join("repo"), "test,staging,production");

    // 1.0: the release, its layer and the stage package.
    release(&repository, &manifests[0], "1.0");
    server.subscribe(&repository, "production", "tally");
    let (downloads, text) = install(&server, "tally-production", &[]);
    for package in ["tally-1.0", layers[0].as_str(), "tally-production"] {
        assert!(downloads.iter().any(|name| name == package), "{text}");
    }
    assert_tally_serves(&server, port, "1.0", "0.9.0", &layers[0]);

    // 1.1, code only: the release package and the stage package, no layer.
    release(&repository, &manifests[1], "1.1");
    let (downloads, text) = install(&server, "tally-production", &[]);
    assert_eq!(downloads, ["tally-1.1", "tally-production"], "{text}");
    assert_eq!(server.link("/opt/tally/production").as_deref(), Some("1.1"));
    assert_tally_serves(&server, port, "1.1", "0.9.0", &layers[1]);

    // 1.2 changes a dependency: a new layer comes with it.
    release(&repository, &manifests[2], "1.2");
    let (downloads, text) = install(&server, "tally-production", &[]);
    assert_eq!(
        downloads,
        ["tally-1.2", layers[2].as_str(), "tally-production"],
        "{text}"
    );
    assert_tally_serves(&server, port, "1.2", "0.8.10", &layers[2]);

    // autoremove keeps the release production pointed to before (1.1, `[stages] keep`)
    // and so its layer; 1.0 goes.
    let output = server.apt_get_ok(&["autoremove", "--purge"]);
    assert!(
        server.installed_version("tally-1.0").is_none(),
        "{}",
        stdout(&output)
    );
    assert!(server.installed_version("tally-1.1").is_some());
    assert!(server.installed_version(&layers[1]).is_some());
    assert!(server.exists(&format!("/opt/tally/.layers/{}", key_of(&layers[1]))));

    // Rollback to 1.1: only the stage package is downloaded.
    repository.run(&["rollback", "tally", "production"]);
    let (downloads, text) = install(&server, "tally-production", &["--allow-downgrades"]);
    assert_eq!(downloads, ["tally-production"], "{text}");
    assert_eq!(server.link("/opt/tally/production").as_deref(), Some("1.1"));
    assert_tally_serves(&server, port, "1.1", "0.9.0", &layers[1]);

    // gc keeps what the kept releases need: 1.1 (production) and 1.2 (staging) with their
    // layers; 1.0 goes. The server finds nothing to change.
    assert_gc_keeps(
        &repository,
        &["tally-1.0"],
        &["tally-1.1", "tally-1.2", &layers[1], &layers[2]],
    );
    let (downloads, text) = install(&server, "tally-production", &[]);
    assert!(downloads.is_empty(), "{text}");
    assert_tally_serves(&server, port, "1.1", "0.9.0", &layers[1]);
}

/// `repo gc --keep 0` drops the packages of `gone` and keeps those of `kept` (matched
/// as whole names in `repo list`); `repo verify` passes after it.
fn assert_gc_keeps(repository: &RepoServer, gone: &[&str], kept: &[&str]) {
    repository.run(&["gc", "--keep", "0"]);
    let listed = stdout(&repository.run(&["list"]));
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for package in gone {
        assert!(!names.contains(package), "{package} is left:\n{listed}");
    }
    for package in kept {
        assert!(names.contains(package), "{package} is gone:\n{listed}");
    }
    repository.run(&["verify"]);
}

/// The node service: `serve.js` answers each GET with the native module's greeting, the
/// release's marker and the file `require` found the module in.
const NODE_SERVER: &str = "const http = require('http');\n\
    const addon = require('addon');\n\
    http.createServer((request, response) => {\n\
    \x20 response.end(`${addon.hello()} MARKER ${require.resolve('addon')}\\n`);\n\
    }).listen(Number(process.env.PORT), '127.0.0.1');\n";

/// Builds the native node application at `version` for bookworm (its nodejs 18 and
/// node-gyp in the build root) into `out`, with its service (`serve.js`); gives the build
/// manifest's path and the layer's package name.
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
        "[build]\npackages = [\"node-gyp\", \"libnode-dev\", \"g++\", \"make\"]\n\n\
         [service]\ncommand = \"/usr/bin/node serve.js\"\nsettle = \"1s\"\n",
    );
    fs::write(
        app.join("serve.js"),
        NODE_SERVER.replace("MARKER", &format!("m{version}")),
    )
    .expect("write serve.js");
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
    let build_manifest = fs::read_dir(out)
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

/// Checks that the test stage's service runs `version` (its main process's directory)
/// and answers with the native module loaded from `layer`, and that `node` runs the
/// release's `server.js`, which prints `expected`.
fn assert_nodeapp_serves(server: &Server, port: u16, version: &str, layer: &str, expected: &str) {
    assert_eq!(
        main_directory(server, "nodeapp-test.service"),
        format!("/opt/nodeapp/{version}")
    );
    let body = answer(port);
    assert_eq!(
        body,
        format!(
            "native hello m{version} /opt/nodeapp/.layers/{}/node_modules/addon/index.js\n",
            key_of(layer)
        )
    );
    let output = server.run_ok(
        "sh",
        &[
            "-c",
            &format!("cd /opt/nodeapp/{version} && node server.js"),
        ],
    );
    assert_eq!(stdout(&output), expected);
}

#[test]
fn layers_2_a_node_app_with_a_native_module_shares_its_layer_and_rolls_back_without_download() {
    if !crate::node::node_tools_present("node layers e2e") {
        return;
    }
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
    // The builds come first: the container is up only for the steps on the server.
    let Some(mut server) = Server::booted("node-layers") else {
        return;
    };
    // nodejs comes from the Debian mirror.
    server.use_mirror();
    let port = free_port();
    set_port(&server, "nodeapp", "test", port);
    let repo_temp = tempfile::tempdir().expect("temporary directory");
    let repository = RepoServer::start(&repo_temp.path().join("repo"), "test");
    let install_test = |extra: &[&str]| install(&server, "nodeapp-test", extra);

    repository.run(&["add", "--manifest", &manifests[0].to_string_lossy()]);
    server.subscribe_to(&repository, "test", Some("bookworm"), "nodeapp");
    let (downloads, text) = install_test(&[]);
    assert!(downloads.contains(&layers[0]), "{text}");
    assert_nodeapp_serves(&server, port, "1.0", &layers[0], "native hello 42 m1.0\n");

    // 1.1, code only: the release package and the stage package.
    repository.run(&["add", "--manifest", &manifests[1].to_string_lossy()]);
    let (downloads, text) = install_test(&[]);
    assert_eq!(downloads, ["nodeapp-1.1", "nodeapp-test"], "{text}");
    assert_nodeapp_serves(&server, port, "1.1", &layers[1], "native hello 42 m1.1\n");

    // 1.2 drops a dependency: a new layer.
    repository.run(&["add", "--manifest", &manifests[2].to_string_lossy()]);
    let (downloads, text) = install_test(&[]);
    assert_eq!(
        downloads,
        ["nodeapp-1.2", layers[2].as_str(), "nodeapp-test"],
        "{text}"
    );
    assert_nodeapp_serves(&server, port, "1.2", &layers[2], "native hello m1.2\n");

    // autoremove keeps 1.1 (`[stages] keep`, 1 by default) and its layer; 1.0 goes.
    server.apt_get_ok(&["autoremove", "--purge"]);
    assert!(server.installed_version("nodeapp-1.0").is_none());
    assert!(server.installed_version("nodeapp-1.1").is_some());
    assert!(server.installed_version(&layers[1]).is_some());

    // Rollback to 1.1: its release and layer are still installed, nothing but the stage
    // package is downloaded.
    repository.run(&["rollback", "nodeapp", "test"]);
    let (downloads, text) = install_test(&["--allow-downgrades"]);
    assert_eq!(downloads, ["nodeapp-test"], "{text}");
    assert_eq!(server.link("/opt/nodeapp/test").as_deref(), Some("1.1"));
    assert_nodeapp_serves(&server, port, "1.1", &layers[1], "native hello 42 m1.1\n");

    // gc keeps 1.1 (test points to it) and its layer, and drops 1.0, 1.2 and 1.2's layer.
    assert_gc_keeps(
        &repository,
        &["nodeapp-1.0", "nodeapp-1.2", &layers[2]],
        &["nodeapp-1.1", &layers[1]],
    );
    let (downloads, text) = install_test(&[]);
    assert!(downloads.is_empty(), "{text}");
    assert_nodeapp_serves(&server, port, "1.1", &layers[1], "native hello 42 m1.1\n");
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
