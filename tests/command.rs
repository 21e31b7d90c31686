//! `kind = "command"`: the build command's environment, its streamed output and its
//! failures; and debstage's own package (packaging/debstage, what `make deb` builds).

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::{debstage, project_root, run_fail, run_ok, stderr};

fn manifest(directory: &Path, command: &str) -> std::path::PathBuf {
    let path = directory.join("debstage.toml");
    fs::write(
        &path,
        format!(
            "[package]\nname = \"cmdapp\"\nversion = \"2.5\"\n\
             maintainer = \"Test <test@example.com>\"\ndescription = \"Command test\"\n\
             [environment]\nkind = \"command\"\ncommand = '''{command}'''\n"
        ),
    )
    .expect("write manifest");
    path
}

fn build(manifest: &Path, quiet: bool) -> Command {
    let mut command = debstage();
    if quiet {
        command.arg("--quiet");
    }
    command
        .arg("build")
        .arg("--manifest")
        .arg(manifest)
        .arg("--out")
        .arg(manifest.parent().expect("parent").join("out"))
        .env("SOURCE_DATE_EPOCH", "1700000000");
    command
}

#[test]
fn command_installs_into_destdir_with_name_and_version() {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = manifest(
        temp.path(),
        "echo building $APP_NAME $APP_VERSION; mkdir -p \"$DESTDIR/bin\"; \
         printf '%s %s\\n' \"$APP_NAME\" \"$APP_VERSION\" > \"$DESTDIR/bin/version.txt\"; \
         cp /bin/true \"$DESTDIR/bin/true\"",
    );
    let output = run_ok(&mut build(&path, false));
    // The command's output is streamed to stderr, and not at all when quiet.
    assert!(
        stderr(&output).contains("building cmdapp 2.5"),
        "{}",
        stderr(&output)
    );
    let deb = temp.path().join("out/cmdapp-2.5_2.5-1_amd64.deb");
    let architecture =
        String::from_utf8_lossy(&run_ok(Command::new("dpkg").arg("--print-architecture")).stdout)
            .trim()
            .to_string();
    let deb = deb.with_file_name(format!("cmdapp-2.5_2.5-1_{architecture}.deb"));
    let extracted = temp.path().join("x");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extracted));
    assert_eq!(
        fs::read_to_string(extracted.join("opt/cmdapp/2.5/bin/version.txt")).expect("file"),
        "cmdapp 2.5\n"
    );
    // The copied ELF file gives the architecture and libc's dependency.
    let depends = String::from_utf8_lossy(
        &run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends")).stdout,
    )
    .to_string();
    assert!(depends.contains("libc6 (>= "), "{depends}");

    fs::remove_dir_all(temp.path().join("out")).expect("clean");
    let output = run_ok(&mut build(&path, true));
    assert!(
        !stderr(&output).contains("building cmdapp"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn failing_command_reports_exit_code_and_last_lines() {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = manifest(
        temp.path(),
        "for i in $(seq 1 50); do echo line $i; done; echo compiler says no >&2; exit 3",
    );
    let output = run_fail(&mut build(&path, true));
    let message = stderr(&output);
    assert!(message.contains("exit code 3"), "{message}");
    assert!(message.contains("compiler says no"), "{message}");
    assert!(message.contains("line 50"), "{message}");
    assert!(
        !message.contains("line 10\n"),
        "more than the last lines: {message}"
    );
    assert!(message.contains("[environment] command"), "{message}");

    let path = manifest(temp.path(), "echo nothing to install");
    let message = stderr(&run_fail(&mut build(&path, true)));
    assert!(
        message.contains("installed nothing into $DESTDIR"),
        "{message}"
    );
}

#[test]
fn debstage_packages_itself() {
    // packaging/debstage, installing the binary `cargo test` has built (`make deb` runs
    // `cargo build --release` instead).
    let temp = tempfile::tempdir().expect("temp dir");
    let out = temp.path().join("out");
    run_ok(
        debstage()
            .args(["--quiet", "build", "--manifest"])
            .arg(project_root().join("packaging/debstage/debstage.toml"))
            .arg("--out")
            .arg(&out)
            .args(["--version", env!("CARGO_PKG_VERSION")])
            // The unoptimised binary is 100 MB: the fastest compressor keeps the test short.
            .args(["--compress", "gzip", "--level", "1"])
            .env("DEBSTAGE_BINARY", env!("CARGO_BIN_EXE_debstage"))
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    let version = env!("CARGO_PKG_VERSION");
    let deb = fs::read_dir(&out)
        .expect("out")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.file_name().is_some_and(|name| {
                name.to_string_lossy()
                    .starts_with(&format!("debstage-{version}_"))
            })
        })
        .expect("the payload package was built");
    let listing =
        String::from_utf8_lossy(&run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb)).stdout)
            .to_string();
    assert!(
        listing.contains(&format!("./opt/debstage/{version}/bin/debstage")),
        "{listing}"
    );
    let extracted = temp.path().join("x");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extracted));
    let output = run_ok(
        Command::new(extracted.join(format!("opt/debstage/{version}/bin/debstage")))
            .arg("--version"),
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(version),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let depends = String::from_utf8_lossy(
        &run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends")).stdout,
    )
    .to_string();
    assert!(depends.contains("libc6 (>= "), "{depends}");
}

/// A cargo project made by `debstage init`: `cargo install --path .` builds into scratch
/// space (CARGO_TARGET_DIR), so the application directory gets no `target/`; and a
/// `target/` marked as a cache (CACHEDIR.TAG, as cargo marks its own) that a command
/// copies into the release is left out, and the build says so.
#[test]
fn cargo_builds_outside_the_application_and_its_target_is_never_shipped() {
    let (temp, directory) = crate::init::project("cargo");
    crate::init::init(&directory);
    let output = run_ok(
        crate::init::build_command(&directory, &temp.path().join("out"))
            .env_remove("CARGO_TARGET_DIR"),
    );
    assert!(
        !directory.join("target").exists(),
        "cargo wrote target/ into the application: {}",
        stderr(&output)
    );
    let architecture =
        String::from_utf8_lossy(&run_ok(Command::new("dpkg").arg("--print-architecture")).stdout)
            .trim()
            .to_string();
    let payload = temp
        .path()
        .join(format!("out/shape-cli-0.7.0_0.7.0-1_{architecture}.deb"));
    let unpacked = temp.path().join("unpacked");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&payload)
            .arg(&unpacked),
    );
    let ran = run_ok(&mut Command::new(
        unpacked.join("opt/shape-cli/0.7.0/bin/shape_cli"),
    ));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "shape-cli\n");

    // A command that copies the whole application, with a cargo target/ in it.
    let app = temp.path().join("copying");
    fs::create_dir_all(app.join("target/release")).expect("mkdir");
    fs::write(
        app.join("target/CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag.\n",
    )
    .expect("write");
    fs::write(app.join("target/release/app"), "built\n").expect("write");
    fs::write(app.join("run.sh"), "#!/bin/sh\necho run\n").expect("write");
    let path = manifest(&app, "cp -r . \"$DESTDIR/\"");
    let output = run_ok(&mut build(&path, false));
    assert!(
        stderr(&output).contains("target/ (a cache directory: it has a CACHEDIR.TAG)"),
        "{}",
        stderr(&output)
    );
    let listing = String::from_utf8_lossy(
        &run_ok(
            Command::new("dpkg-deb")
                .arg("-c")
                .arg(app.join("out/cmdapp-2.5_2.5-1_all.deb")),
        )
        .stdout,
    )
    .into_owned();
    assert!(listing.contains("/opt/cmdapp/2.5/run.sh"), "{listing}");
    assert!(!listing.contains("target"), "{listing}");
}
