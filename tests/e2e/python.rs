//! Scenario 9: a Python application and debstage's own package, installed on a server and
//! run from their release directories.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::BuildManifest;

use super::harness::{http_get, RepoServer, Server};
use crate::support::{build, debstage, example, project_root, run_ok, stderr, stdout};

/// A process running inside a server, killed when the guard goes.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

#[test]
fn scenario_9_a_python_app_installs_and_answers_from_its_stage_link() {
    let Some(mut server) = Server::new("python") else {
        return;
    };
    // python3.11 and the libraries Pillow needs come from the Debian mirror.
    server.use_mirror();
    let (_app_temp, app) = example("pyapp");
    let out = app.join("out");
    let manifest = build(&app.join("debstage.toml"), &out, &[]);
    let version = manifest["version"].as_str().expect("version").to_string();
    let debian_version = manifest["debian_version"]
        .as_str()
        .expect("debian_version")
        .to_string();

    let repo_temp = tempfile::tempdir().expect("temporary directory");
    let repository = RepoServer::start(&repo_temp.path().join("repo"), "test,staging,production");
    let manifest_file = out.join(format!("pyapp_{debian_version}.build.json"));
    repository.run(&["add", "--manifest", &manifest_file.to_string_lossy()]);
    for stage in ["staging", "production"] {
        repository.run(&["promote", "pyapp", &version, "--to", stage]);
    }
    server.subscribe(&repository, "production", "pyapp");
    server.apt_get_ok(&["update"]);
    server.apt_get_ok(&["install", "pyapp-production"]);
    assert_eq!(
        server.link("/opt/pyapp/production").as_deref(),
        Some(version.as_str())
    );
    // Python came in through the payload's Depends, not by hand.
    assert!(server.installed_version("python3.11").is_some());

    let entry = "/opt/pyapp/production/bin/pyapp";
    let output = server.run_ok(entry, &["--check"]);
    assert!(
        stdout(&output).starts_with(&format!("pyapp {version}: badge of ")),
        "{}",
        stdout(&output)
    );

    let port = free_port();
    let child = server
        .command(entry)
        .args(["--port", &port.to_string()])
        .env("APP_STAGE", "production")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pyapp in the server");
    let _running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "pyapp did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = http_get(port, "/");
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("pyapp {version} on production\n")
    );
    let (status, body) = http_get(port, "/badge.png");
    assert_eq!(status, 200);
    assert!(body.starts_with(b"\x89PNG"), "not a PNG");
}

#[test]
fn scenario_9_debstage_packages_itself_and_runs_from_opt() {
    let Some(server) = Server::new("self-package") else {
        return;
    };
    // What `make deb` runs, with the binary this test run built instead of a release
    // build (a nested cargo inside `cargo test` would rebuild the dependencies).
    let version = env!("CARGO_PKG_VERSION");
    let out = tempfile::tempdir().expect("temporary directory");
    let mut command = debstage();
    command
        .args(["--format", "json", "build", "--manifest"])
        .arg(project_root().join("packaging/debstage/debstage.toml"))
        .arg("--out")
        .arg(out.path())
        .args(["--version", version])
        // The test binary is a debug build, several times larger than a release one:
        // gzip keeps this scenario at seconds where xz takes a minute.
        .args(["--compress", "gzip"])
        .env("DEBSTAGE_BINARY", env!("CARGO_BIN_EXE_debstage"));
    let manifest: BuildManifest = serde_json::from_slice(&run_ok(&mut command).stdout)
        .expect("build prints its manifest as JSON");
    let files: Vec<PathBuf> = manifest
        .packages
        .iter()
        .map(|package| out.path().join(&package.file))
        .collect();
    let file_refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let inside = server.put("/tmp/debs", &file_refs);
    let mut arguments = vec!["-i"];
    arguments.extend(inside.iter().map(String::as_str));
    // dpkg checks the payload's Depends against what a minimal Debian has.
    let output = server.run("dpkg", &arguments);
    assert!(output.status.success(), "{}", stderr(&output));
    for binary in [
        format!("/opt/debstage/{version}/bin/debstage"),
        "/opt/debstage/stable/bin/debstage".to_string(),
    ] {
        let output = server.run_ok(&binary, &["--version"]);
        assert_eq!(
            stdout(&output).trim(),
            format!("debstage {version}"),
            "{binary}"
        );
    }
}

/// Releases of Python projects made by `debstage init` (a setuptools flat layout, a
/// uv.lock, hash-pinned requirements), built on this bookworm machine without
/// SOURCE_DATE_EPOCH, install with apt on a bookworm server (python3.11 comes through
/// their Depends) and their console scripts run from the release directory; the stage
/// package switches its link after the activation hook from `.debstage/` ran.
#[test]
fn scenario_9_python_layouts_from_init_install_and_run() {
    let Some(mut server) = Server::new("python-layouts") else {
        return;
    };
    server.use_mirror();
    let mut files = Vec::new();
    let mut temps = Vec::new();
    let layouts = [
        (
            "setuptools-flat",
            "shape-flat",
            "1.3.0",
            "bin/shape-flat 3",
            "shape-flat 1.3.0: square area 9",
        ),
        (
            "uv-lock",
            "shape-uv",
            "0.8.0",
            "bin/shape-uv",
            "shape-uv 0.8.0: ellipse area 6.283",
        ),
        (
            "requirements-hashes",
            "shape-pinned",
            "5.0.0",
            "bin/shape-pinned",
            "shape-pinned 5.0.0: hexagon area 2.598",
        ),
    ];
    for (name, _, _, _, _) in &layouts {
        let (temp, directory) = crate::init::project(name);
        crate::init::init(&directory);
        let out = temp.path().join("out");
        let output = crate::support::run_ok(
            debstage()
                .args(["--format", "json", "build", "--manifest"])
                .arg(directory.join("debstage.toml"))
                .arg("--out")
                .arg(&out)
                .env_remove("SOURCE_DATE_EPOCH")
                .env("PIP_CACHE_DIR", project_root().join("target/pip-cache")),
        );
        let manifest: BuildManifest =
            serde_json::from_slice(&output.stdout).expect("build prints its manifest as JSON");
        for package in &manifest.packages {
            // The layer of the release's dependencies comes with it (issue 21).
            if package.role == "payload"
                || package.role == "layer"
                || package.stage.as_deref() == Some("production")
            {
                files.push(out.join(&package.file));
            }
        }
        temps.push(temp);
    }
    let file_refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let inside = server.put("/tmp/debs", &file_refs);
    server.apt_get_ok(&["update"]);
    let mut arguments = vec!["install"];
    arguments.extend(inside.iter().map(String::as_str));
    let output = server.apt_get_ok(&arguments);
    for (_, app, version, command, expected) in &layouts {
        assert!(
            stdout(&output).contains(&format!("activating {app} {version} for production")),
            "{app}: the hook did not run:\n{}",
            stdout(&output)
        );
        assert_eq!(
            server.link(&format!("/opt/{app}/production")).as_deref(),
            Some(*version)
        );
        let mut words = command.split_whitespace();
        let program = format!("/opt/{app}/production/{}", words.next().expect("program"));
        let arguments: Vec<&str> = words.collect();
        let output = server.run_ok(&program, &arguments);
        assert_eq!(stdout(&output).trim(), *expected, "{app}");
    }
}
