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
