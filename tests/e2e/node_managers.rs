//! Scenario: a pnpm application (`tests/projects/pnpm-app`) from `debstage init`, built
//! with `--target bookworm`: pnpm is installed inside the build root with Debian's npm,
//! its frozen install runs with bookworm's Node.js, which `engines.node` is checked
//! against; the release installs with apt on a bookworm server (which brings bookworm's
//! nodejs) and its `node` entry runs there, without the development dependency.

use super::harness::Server;
use crate::init::{build_command, project};
use crate::node::node_tools_present;
use crate::node_managers::init_single_payload;
use crate::support::{run_ok, stderr, stdout};

#[test]
fn a_pnpm_app_built_for_bookworm_installs_with_apt_and_runs() {
    if !node_tools_present("pnpm e2e") {
        return;
    }
    let Some(mut server) = Server::new("pnpm") else {
        return;
    };
    server.use_mirror();
    let (temp, directory) = project("pnpm-app");
    init_single_payload(&directory);
    let out = temp.path().join("out");
    let output = run_ok(
        build_command(&directory, &out)
            .args(["--target", "bookworm"])
            .env("XDG_CACHE_HOME", crate::build_target::cache_home()),
    );
    let said = stderr(&output);
    assert!(
        said.contains("Installing with pnpm 9.15.9 (from pnpm-lock.yaml)"),
        "{said}"
    );
    let payload = std::fs::read_dir(&out)
        .expect("out")
        .map(|entry| entry.expect("entry").path())
        .find(|path| {
            path.to_string_lossy()
                .contains("pnpm-app-1.2.0_1.2.0-1+deb12_")
        })
        .unwrap_or_else(|| panic!("no payload in {}: {said}", out.display()));
    let depends = stdout(&run_ok(
        std::process::Command::new("dpkg-deb")
            .arg("-f")
            .arg(&payload)
            .arg("Depends"),
    ));
    assert!(depends.contains("nodejs (>= 18.0.0)"), "{depends}");

    let files = server.put("/var/tmp/debs", &[&payload]);
    server.apt_get_ok(&["install", "--no-install-recommends", &files[0]]);
    let output = server.run_ok("sh", &["-c", "cd /opt/pnpm-app/1.2.0 && node index.js"]);
    assert_eq!(
        stdout(&output),
        "two hours are 7200000 ms; the dev dependency is absent\n"
    );
}
