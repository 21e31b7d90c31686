//! The packages of a real `debstage build`, carried through the stages by `debstage repo`
//! and served by `debstage repo serve`, as apt on a server sees them. (How the published
//! tree is indexed, signed and served is tested with apt, gpgv and sqv beside the code, in
//! `src/repo/publish/tests.rs`.)

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::e2e::harness::RepoServer;
use crate::support::apt::Apt;
use crate::support::{run_ok, sha256_file, BuildManifest};

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The packages of a build of examples/hello, added and promoted to production, reach apt
/// intact (the pool holds the bytes the build manifest names), the payload comes with its
/// stage package from the production suite, and the pin the stage package ships makes the
/// stage's suite win.
#[test]
fn packages_of_a_real_build_are_served_per_stage_and_pinned() {
    let (temp, app) = crate::support::example("hello");
    let out = temp.path().join("out");
    let manifest: BuildManifest = serde_json::from_value(crate::support::build(
        &app.join("debstage.toml"),
        &out,
        &["--compress", "gzip"],
    ))
    .expect("the build manifest");
    let payloads: Vec<_> = manifest
        .packages
        .iter()
        .filter(|package| package.role == "payload")
        .collect();
    assert_eq!(payloads.len(), 1, "{manifest:?}");
    let stages: Vec<_> = manifest
        .packages
        .iter()
        .filter(|package| package.role == "stage")
        .collect();
    assert_eq!(stages.len(), 3, "{manifest:?}");
    assert_eq!(payloads.len() + stages.len(), manifest.packages.len());
    let production = stages[2];
    assert_eq!(production.stage.as_deref(), Some("production"));
    let package = production.package.as_str();

    let repository = RepoServer::start(&temp.path().join("repo"), "test,staging,production");
    let manifest_file = out.join(manifest.file_name());
    repository.run(&["add", "--manifest", manifest_file.to_str().expect("UTF-8")]);
    repository.run(&["promote", "hello", "1.0"]);
    repository.run(&["promote", "hello", "1.0"]);

    // The pool holds the bytes the build wrote, under the names apt is given.
    for built in &manifest.packages {
        let pooled = repository
            .directory
            .join("pool/main/h/hello")
            .join(&built.file);
        assert_eq!(sha256_file(&pooled), built.sha256, "{}", built.file);
    }

    let apt_directory = temp.path().join("apt");
    let apt = Apt::for_suite(
        &apt_directory,
        &repository.url(),
        "production",
        &repository.run(&["export-key", "--binary"]).stdout,
    );
    // The pin file exactly as the stage package ships it.
    let unpacked = temp.path().join("unpacked");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(out.join(&production.file))
            .arg(&unpacked),
    );
    fs::copy(
        unpacked.join("etc/apt/preferences.d").join(package),
        apt_directory.join("etc/preferences.d").join(package),
    )
    .expect("the pin file the stage package ships");

    let update = apt.command(&["update"]);
    let output = text(&update);
    assert!(update.status.success(), "{output}");
    assert!(!output.contains("W:") && !output.contains("E:"), "{output}");
    let policy = apt.tool("apt-cache", &["policy", package]);
    let output = text(&policy);
    // apt 2.6 prints the pin on the version line: `1.0-1 1001`.
    assert!(
        output.contains(" 1.0-1 1001\n") && output.contains(" production/main "),
        "{output}"
    );
    let show = apt.tool("apt-cache", &["show", package]);
    let output = text(&show);
    // The package's own control fields reach apt unchanged, next to the pool hashes.
    assert!(
        output.contains("Depends: hello-1.0 (= 1.0-1)\n")
            && output.contains(&format!("SHA256: {}\n", production.sha256)),
        "{output}"
    );
    // The payload the stage package depends on is in the production suite too.
    let install = apt.command(&["install", "--simulate", package]);
    let output = text(&install);
    assert!(install.status.success(), "{output}");
    assert!(
        output.contains("Inst hello-1.0 (1.0-1 ") && output.contains(":production ["),
        "{output}"
    );
    let download = apt.command(&["download", package]);
    assert!(download.status.success(), "{}", text(&download));
    assert_eq!(
        sha256_file(
            &apt_directory
                .join("download")
                .join(Path::new(&production.file))
        ),
        production.sha256
    );
}
