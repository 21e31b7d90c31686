//! Scenario: compiled and native code on a Debian server. A stripped C program, and a
//! Rust program that `cargo install` built, with their dbgsym packages installed with
//! dpkg, the debug files found by the build-id; a Node app
//! whose native addon was built against bookworm's Node.js headers installs with apt
//! (which brings bookworm's nodejs) and loads; a build for another Node.js ABI is refused.

use std::process::Command;

use super::harness::{shout, Server};
use crate::node::{node_application, node_tools_present};
use crate::node_managers::SINGLE_PAYLOAD;
use crate::strip::{build_id, c_application, has_section, rust_application};
use crate::support::{build, run_ok, stderr, stdout};

fn architecture() -> String {
    stdout(&run_ok(Command::new("dpkg").arg("--print-architecture")))
        .trim()
        .to_string()
}

#[test]
fn a_dbgsym_package_installs_beside_its_payload_and_holds_the_build_ids() {
    let Some(server) = Server::new("dbgsym") else {
        return;
    };
    let temp = tempfile::tempdir().expect("temp dir");
    let manifest = c_application(&temp.path().join("app"), "1.0", "");
    let out = temp.path().join("out");
    build(&manifest, &out, &[]);
    let arch = architecture();
    let files = server.put(
        "/tmp/debs",
        &[
            &out.join(format!("chello-1.0_1.0-1_{arch}.deb")),
            &out.join(format!("chello-1.0-dbgsym_1.0-1_{arch}.deb")),
        ],
    );
    let mut arguments = vec!["-i"];
    arguments.extend(files.iter().map(String::as_str));
    server.run_ok("dpkg", &arguments);

    let output = server.run_ok("/opt/chello/1.0/bin/hello", &[]);
    assert_eq!(stdout(&output), "hello from c\n");
    for program in [
        "/opt/chello/1.0/bin/hello",
        "/opt/chello/1.0/lib/libgreet.so.1",
    ] {
        let installed = server.path(program);
        assert!(!has_section(&installed, ".debug_info"), "{program}");
        let id = build_id(&installed);
        let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
        assert!(has_section(&server.path(&debug), ".debug_info"), "{debug}");
        let owner = stdout(&server.run_ok("dpkg", &["-S", &debug]));
        assert!(owner.starts_with("chello-1.0-dbgsym:"), "{owner}");
    }
    // A Rust program that `cargo install` built: the same on the server.
    let manifest = rust_application(&temp.path().join("rust"));
    let out = temp.path().join("rust-out");
    build(&manifest, &out, &[]);
    let files = server.put(
        "/tmp/debs",
        &[
            &out.join(format!("rustapp-0.1.0_0.1.0-1_{arch}.deb")),
            &out.join(format!("rustapp-0.1.0-dbgsym_0.1.0-1_{arch}.deb")),
        ],
    );
    let mut arguments = vec!["-i"];
    arguments.extend(files.iter().map(String::as_str));
    server.run_ok("dpkg", &arguments);
    let output = server.run_ok("/opt/rustapp/0.1.0/bin/rustapp", &[]);
    assert_eq!(stdout(&output), "hello from rust\n");
    let id = build_id(&server.path("/opt/rustapp/0.1.0/bin/rustapp"));
    let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
    assert!(has_section(&server.path(&debug), ".debug_info"), "{debug}");
    assert!(!server.exists("/opt/rustapp/0.1.0/.crates.toml"));

    // Removing the payload takes its debug symbols with it (exact dependency).
    let output = server.run("dpkg", &["-r", "chello-1.0"]);
    assert!(
        !output.status.success(),
        "dpkg removed a payload its dbgsym depends on"
    );
    assert!(
        stderr(&output).contains("chello-1.0-dbgsym depends on chello-1.0"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_node_app_installs_with_the_nodejs_of_its_abi_and_its_addon_loads() {
    if !node_tools_present("node e2e") {
        return;
    }
    let Some(mut server) = Server::new("node") else {
        return;
    };
    server.use_mirror();
    let temp = tempfile::tempdir().expect("temp dir");

    // Built for bookworm in its build root, with Debian's nodejs, npm and node-gyp and
    // the root's Node.js headers: bound to the server's nodejs.
    let manifest = node_application(
        &temp.path().join("app"),
        "1.0",
        &format!(
            "{SINGLE_PAYLOAD}[build]\npackages = [\"node-gyp\", \"libnode-dev\", \"g++\", \"make\"]\n"
        ),
    );
    let out = temp.path().join("out");
    let output = run_ok(
        crate::support::debstage()
            .args(["--quiet", "build", "--manifest"])
            .arg(&manifest)
            .arg("--out")
            .arg(&out)
            .args(["--target", "bookworm"])
            .env("XDG_CACHE_HOME", crate::build_target::cache_home())
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    assert!(output.status.success());
    let arch = architecture();
    let payload = out.join(format!("nodeapp-1.0_1.0-1+deb12_{arch}.deb"));
    let depends = stdout(&run_ok(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(&payload)
            .arg("Depends"),
    ));
    // Bookworm's nodejs is 18, NODE_MODULE_VERSION 108.
    assert!(
        depends.contains("nodejs (>= 18~)") && depends.contains("nodejs (<< 19~)"),
        "{depends}"
    );
    let files = server.put("/var/tmp/debs", &[&payload]);
    server.apt_get_ok(&["install", "--no-install-recommends", &files[0]]);
    let nodejs = server
        .installed_version("nodejs")
        .expect("apt installed nodejs for the payload");
    let output = server.run_ok("sh", &["-c", "cd /opt/nodeapp/1.0 && node server.js"]);
    assert_eq!(
        stdout(&output),
        "native hello 42\n",
        "nodejs {nodejs}, Depends {depends}"
    );

    // Built against the host's headers: refused when they are another ABI's.
    let host_abi = stdout(&run_ok(
        Command::new("node").args(["-p", "process.versions.modules"]),
    ));
    let server_abi = stdout(&server.run_ok("node", &["-p", "process.versions.modules"]));
    if host_abi.trim() == server_abi.trim() {
        shout(&format!(
            "node e2e: the host's Node.js has the server's ABI ({}): no other ABI to refuse",
            host_abi.trim()
        ));
        return;
    }
    let manifest = node_application(&temp.path().join("app-host"), "1.1", SINGLE_PAYLOAD);
    let out = temp.path().join("out-host");
    build(&manifest, &out, &[]);
    let files = server.put(
        "/var/tmp/debs",
        &[&out.join(format!("nodeapp-1.1_1.1-1_{arch}.deb"))],
    );
    let output = server.apt_get(&["install", "--no-install-recommends", &files[0]]);
    assert!(
        !output.status.success(),
        "apt installed an addon of ABI {host_abi} beside nodejs {nodejs}"
    );
    let text = stdout(&output);
    assert!(
        text.contains("nodeapp-1.1 : Depends: nodejs (>="),
        "{text}\n{}",
        stderr(&output)
    );
}
