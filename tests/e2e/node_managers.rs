//! Scenario: the npm, pnpm, yarn classic and yarn berry (node-modules linker)
//! applications of `tests/projects/` from `debstage init`, built with `--target bookworm`:
//! each manager runs its frozen install inside the build root (pnpm and yarn installed
//! there with Debian's npm) with bookworm's Node.js, which `engines.node` is checked
//! against; the source tree is unchanged; two builds 2 s apart without SOURCE_DATE_EPOCH
//! give the same bytes; the releases install with apt on one bookworm server (which
//! brings bookworm's nodejs) and each `node` entry runs there, without the development
//! dependency.

use std::fs;
use std::path::Path;

use super::harness::Server;
use crate::init::{build_command, project};
use crate::node::node_tools_present;
use crate::node_managers::{init_single_payload, tree_state};
use crate::support::{run_ok, sha256_file, stderr, stdout};

/// The applications, with the manager the build must say it installs with.
const APPS: &[(&str, &str)] = &[
    ("pnpm-app", "pnpm 9.15.9 (from pnpm-lock.yaml)"),
    ("npm-app", "npm (from package-lock.json)"),
    ("yarn-app", "yarn (classic) 1 (from yarn.lock)"),
    ("berry-app", "yarn (berry) 4.9.2 (from yarn.lock)"),
];

/// Builds the application in `directory` for bookworm into `out`, without
/// SOURCE_DATE_EPOCH; gives the build's messages and its payload.
fn build_for_bookworm(directory: &Path, out: &Path, app: &str) -> (String, std::path::PathBuf) {
    let output = run_ok(
        build_command(directory, out)
            .args(["--target", "bookworm"])
            .env_remove("SOURCE_DATE_EPOCH")
            .env("XDG_CACHE_HOME", crate::build_target::cache_home()),
    );
    let said = stderr(&output);
    let payload = fs::read_dir(out)
        .expect("out")
        .map(|entry| entry.expect("entry").path())
        .find(|path| {
            path.to_string_lossy()
                .contains(&format!("{app}-1.2.0_1.2.0-1+deb12_"))
        })
        .unwrap_or_else(|| panic!("{app}: no payload in {}: {said}", out.display()));
    (said, payload)
}

#[test]
fn node_apps_built_for_bookworm_install_with_apt_and_run() {
    if !node_tools_present("node apps for bookworm e2e") {
        return;
    }
    let Some(mut server) = Server::new("node apps for bookworm") else {
        return;
    };
    server.use_mirror();
    let temp = tempfile::tempdir().expect("temp dir");
    let mut payloads = Vec::new();
    for (app, manager) in APPS {
        let (_project, directory) = project(app);
        init_single_payload(&directory);
        let before = tree_state(&directory);
        let started = std::time::Instant::now();
        let (said, payload) = build_for_bookworm(&directory, &temp.path().join(app), app);
        let took = started.elapsed().as_secs_f64();
        assert!(
            said.contains(&format!("Installing with {manager}")),
            "{app}: {said}"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
        let (_, again) =
            build_for_bookworm(&directory, &temp.path().join(format!("{app}-again")), app);
        assert_eq!(
            sha256_file(&payload),
            sha256_file(&again),
            "{app}: two builds 2 s apart differ"
        );
        assert_eq!(before, tree_state(&directory), "{app}: the source changed");
        let depends = stdout(&run_ok(
            std::process::Command::new("dpkg-deb")
                .arg("-f")
                .arg(&payload)
                .arg("Depends"),
        ));
        assert!(depends.contains("nodejs (>= 18.0.0)"), "{app}: {depends}");
        crate::e2e::harness::shout(&format!("{app} for bookworm: built in {took:.1} s"));
        payloads.push(payload);
    }

    let debs: Vec<&Path> = payloads.iter().map(|path| path.as_path()).collect();
    let files = server.put("/var/tmp/debs", &debs);
    let mut arguments = vec!["install", "--no-install-recommends"];
    arguments.extend(files.iter().map(String::as_str));
    server.apt_get_ok(&arguments);
    for (app, _) in APPS {
        let output = server.run_ok(
            "sh",
            &["-c", &format!("cd /opt/{app}/1.2.0 && node index.js")],
        );
        assert_eq!(
            stdout(&output),
            "two hours are 7200000 ms; the dev dependency is absent\n",
            "{app}"
        );
    }
}
