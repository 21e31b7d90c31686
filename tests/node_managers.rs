//! Node applications as they come (`tests/projects/{npm,pnpm,yarn}-app`, written for
//! these tests): each has a lockfile, a dependency (`ms`) and a development dependency
//! (`is-number`), and `engines.node`. From `debstage init` to a running `node` entry:
//! the lockfile's manager installs frozen to the lock (pnpm and yarn installed from the
//! npm registry by debstage, into its cache), the development dependency is not shipped,
//! the source tree is unchanged, and `engines.node` bounds `nodejs`. A lockfile that no
//! longer matches package.json fails with the manager's own reason.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::init::{build_command, init, project};
use crate::node::node_tools_present;
use crate::support::{run_fail, run_ok, sha256_file, stderr, stdout};

/// The projects, with the manager the build must say it installs with.
const PROJECTS: &[(&str, &str)] = &[
    ("npm-app", "npm"),
    ("pnpm-app", "pnpm 9.15.9"),
    ("yarn-app", "yarn (classic) 1"),
    ("berry-app", "yarn (berry) 4.9.2"),
];

/// Every file under `directory` with its size and modification time, sorted.
pub(crate) fn tree_state(directory: &Path) -> Vec<String> {
    let mut state: Vec<String> = walkdir::WalkDir::new(directory)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| {
            let entry = entry.expect("walk");
            let metadata = entry.metadata().expect("metadata");
            format!(
                "{} {} {:?}",
                entry.path().display(),
                metadata.len(),
                metadata.modified().expect("mtime")
            )
        })
        .collect();
    state.sort();
    state
}

fn dpkg_field(deb: &Path, field: &str) -> String {
    stdout(&run_ok(
        Command::new("dpkg-deb").arg("-f").arg(deb).arg(field),
    ))
    .trim()
    .to_string()
}

/// Unpacks the payload into `unpacked` and runs `node index.js` in the release of `app`
/// 1.2.0 there; gives what it printed.
/// The manifest lines that keep one payload: these tests look at `node_modules` in the
/// release (layered node builds are tested in `tests/layers.rs`), and a layer from the
/// shared cache would skip the install they watch.
pub(crate) const SINGLE_PAYLOAD: &str = "[layers]\nenabled = false\n";

/// `debstage init` in `directory`, with [`SINGLE_PAYLOAD`] appended to its manifest.
pub(crate) fn init_single_payload(directory: &Path) {
    init(directory);
    let manifest = directory.join("debstage.toml");
    let text = fs::read_to_string(&manifest).expect("init wrote debstage.toml");
    fs::write(&manifest, format!("{text}\n{SINGLE_PAYLOAD}")).expect("write debstage.toml");
}

fn run_unpacked(payload: &Path, unpacked: &Path, app: &str) -> String {
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(payload)
            .arg(unpacked),
    );
    stdout(&run_ok(
        Command::new("node")
            .arg("index.js")
            .current_dir(unpacked.join(format!("opt/{app}/1.2.0"))),
    ))
}

#[test]
fn npm_pnpm_and_yarn_apps_install_frozen_without_dev_dependencies_and_run() {
    if !node_tools_present("node managers") {
        return;
    }
    for (name, manager) in PROJECTS {
        let (temp, directory) = project(name);
        init_single_payload(&directory);
        let before = tree_state(&directory);
        let out = temp.path().join("out");
        let started = Instant::now();
        let output = run_ok(&mut build_command(&directory, &out));
        let took = started.elapsed();
        let said = stderr(&output);
        assert!(
            said.contains(&format!("Installing with {manager} (from ")),
            "{name}: {said}"
        );
        assert_eq!(before, tree_state(&directory), "{name}: the source changed");

        let payload = fs::read_dir(&out)
            .expect("out")
            .map(|entry| entry.expect("entry").path())
            .find(|path| {
                path.file_name().is_some_and(|file| {
                    file.to_string_lossy()
                        .starts_with(&format!("{name}-1.2.0_"))
                })
            })
            .unwrap_or_else(|| panic!("{name}: no payload in {}", out.display()));
        let files = stdout(&run_ok(Command::new("dpkg-deb").arg("-c").arg(&payload)));
        let release = format!("./opt/{name}/1.2.0/");
        assert!(
            files.contains(&format!("{release}node_modules/ms/package.json"))
                || files.contains(&format!(
                    "{release}node_modules/.pnpm/ms@2.1.3/node_modules/ms/package.json"
                )),
            "{name}: ms not shipped:\n{files}"
        );
        for left_out in [
            "is-number",
            ".modules.yaml",
            ".yarn-integrity",
            ".yarn-state.yml",
            "install-state.gz",
        ] {
            assert!(
                !files.contains(left_out),
                "{name}: {left_out} shipped:\n{files}"
            );
        }
        let depends = dpkg_field(&payload, "Depends");
        assert!(depends.contains("nodejs (>= 18.0.0)"), "{name}: {depends}");

        assert_eq!(
            run_unpacked(&payload, &temp.path().join("unpacked"), name),
            "two hours are 7200000 ms; the dev dependency is absent\n",
            "{name}"
        );
        // The same input gives the same bytes: nothing of the install's time or of the
        // build machine's stores stays in the tree.
        let again = temp.path().join("again");
        run_ok(&mut build_command(&directory, &again));
        let payload_again = again.join(payload.file_name().expect("name"));
        assert_eq!(
            sha256_file(&payload),
            sha256_file(&payload_again),
            "{name}: two builds differ"
        );
        crate::e2e::harness::shout(&format!("{name}: built in {:.1} s", took.as_secs_f64()));
    }
}

/// `package.json`'s dependency on ms with one on is-odd added, which its lockfile lacks.
const STALE: &str = r#""ms": "^2.1.3", "is-odd": "^3.0.1""#;

/// The fixture `name` after `debstage init`, with `from` replaced by `to` in its
/// `package.json`.
fn edited_project(name: &str, from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    let (temp, directory) = project(name);
    init_single_payload(&directory);
    let package_json = directory.join("package.json");
    let text = fs::read_to_string(&package_json).expect("read");
    fs::write(&package_json, text.replace(from, to)).expect("write");
    (temp, directory)
}

/// A dependency added to package.json without updating the lockfile: each manager's
/// frozen install refuses, and the build's error gives the manager's reason first.
#[test]
fn a_lockfile_behind_package_json_fails_with_the_managers_reason() {
    if !node_tools_present("node managers, stale lockfile") {
        return;
    }
    let reasons = [
        ("npm-app", "npm says:\n  npm error"),
        ("pnpm-app", "pnpm says:\n  ERR_PNPM_OUTDATED_LOCKFILE"),
        (
            "yarn-app",
            "yarn (classic) says:\n  error Your lockfile needs to be updated",
        ),
    ];
    for (name, reason) in reasons {
        let (temp, directory) = edited_project(name, r#""ms": "^2.1.3""#, STALE);
        let output = run_fail(&mut build_command(&directory, &temp.path().join("out")));
        let error = stderr(&output);
        let error = &error[error.find("error: ").unwrap_or(0)..];
        assert!(error.contains(reason), "{name}: {error}");
        assert!(!error.contains("Usage:"), "{name}: {error}");
    }
}

/// `engines.node` that the build's Node.js is outside of fails the build, naming the
/// package, the file and the range; without a lockfile the build refuses before
/// installing anything.
#[test]
fn engines_outside_the_build_node_and_a_missing_lockfile_are_refused() {
    if !node_tools_present("node engines") {
        return;
    }
    let (temp, directory) = project("npm-app");
    init_single_payload(&directory);
    let package_json = directory.join("package.json");
    let text = fs::read_to_string(&package_json).expect("read");
    fs::write(
        &package_json,
        text.replace(r#""node": ">=18""#, r#""node": ">=99""#),
    )
    .expect("write");
    let out = temp.path().join("out");
    let build_fails = || stderr(&run_fail(&mut build_command(&directory, &out)));
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.add_filter(
        &temp.path().display().to_string().replace('.', r"\."),
        "[TEMP]",
    );
    settings.add_filter(r"Node\.js \d+\.\d+\.\d+", "Node.js [VERSION]");
    settings.bind(|| {
        let error = build_fails();
        let error = &error[error.find("error: ").unwrap_or(0)..];
        insta::assert_snapshot!("build_node_engines_outside", error);

        fs::write(&package_json, &text).expect("write");
        fs::remove_file(directory.join("package-lock.json")).expect("remove");
        let error = build_fails();
        let error = &error[error.find("error: ").unwrap_or(0)..];
        insta::assert_snapshot!("build_node_without_lockfile", error);
    });
}

/// Node's name of this machine's architecture (`process.arch`).
fn node_arch() -> String {
    stdout(&run_ok(Command::new("node").args(["-p", "process.arch"])))
        .trim()
        .to_string()
}

/// Packs `package/` under `staging` into `tarball` the way npm packs (a `package/`
/// directory), with fixed times so the lockfile's integrity stays the same.
pub(crate) fn pack(staging: &Path, tarball: &Path) {
    fs::create_dir_all(tarball.parent().expect("parent")).expect("mkdir");
    run_ok(
        Command::new("tar")
            .args([
                "--sort=name",
                "--mtime=@1700000000",
                "--owner=0",
                "--group=0",
                "-czf",
            ])
            .arg(tarball)
            .arg("-C")
            .arg(staging)
            .arg("package"),
    );
}

/// An npm app whose dependency ships prebuilt Node-API modules for several platforms in
/// prebuildify's layout (this machine's glibc build made with gcc, a musl build, and
/// builds for macOS and 64-bit ARM Linux) and declares `engines.node`: only the module
/// that loads here ships, the build says what the groups left out, the dependency's
/// engines raise the nodejs bound, and the app loads the module from the unpacked
/// release.
#[test]
fn prebuilds_for_other_platforms_are_left_out_and_dependency_engines_bound_nodejs() {
    if !node_tools_present("node prebuilds") {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let (_project, app) = project("npm-app");
    let arch = node_arch();
    let staging = temp.path().join("staging");
    let package = staging.join("package");
    let ours = package.join(format!("prebuilds/linux-{arch}"));
    fs::create_dir_all(&ours).expect("mkdir");
    let source = temp.path().join("module.c");
    fs::write(
        &source,
        "void *napi_register_module_v1(void *env, void *exports) { return exports; }\n",
    )
    .expect("write");
    run_ok(
        Command::new("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(ours.join("fast.glibc.node"))
            .arg(&source),
    );
    fs::copy(ours.join("fast.glibc.node"), ours.join("fast.musl.node")).expect("copy");
    // A 64-bit ARM ELF header and a Mach-O header: strip cannot read them here.
    let mut arm64 = b"\x7fELF\x02\x01\x01".to_vec();
    arm64.resize(16, 0);
    arm64.extend_from_slice(&[3, 0, 183, 0]);
    arm64.resize(64, 0);
    for (directory, bytes) in [
        ("linux-arm64", arm64),
        ("darwin-x64", b"\xcf\xfa\xed\xfe\x07\x00\x00\x01".to_vec()),
    ] {
        let directory = package.join("prebuilds").join(directory);
        fs::create_dir_all(&directory).expect("mkdir");
        fs::write(directory.join("fast.node"), bytes).expect("write");
    }
    fs::write(
        package.join("package.json"),
        r#"{ "name": "fast", "version": "3.1.0", "main": "index.js", "engines": { "node": ">=18.17.0" } }"#,
    )
    .expect("write");
    fs::write(
        package.join("index.js"),
        "module.exports = require(`./prebuilds/linux-${process.arch}/fast.glibc.node`);\n",
    )
    .expect("write");
    pack(&staging, &app.join("vendor/fast-3.1.0.tgz"));
    let package_json = app.join("package.json");
    let text = fs::read_to_string(&package_json).expect("read");
    fs::write(
        &package_json,
        text.replace(
            r#""ms": "^2.1.3""#,
            r#""ms": "^2.1.3", "fast": "file:vendor/fast-3.1.0.tgz""#,
        ),
    )
    .expect("write");
    fs::write(
        app.join("index.js"),
        "require('fast');\nconsole.log('loaded', require('ms')('1m'));\n",
    )
    .expect("write");
    run_ok(
        Command::new("npm")
            .args(["install", "--package-lock-only", "--no-audit", "--no-fund"])
            .current_dir(&app),
    );
    init_single_payload(&app);
    let out = temp.path().join("out");
    let output = run_ok(&mut build_command(&app, &out));
    let said = stderr(&output);
    assert!(
        said.contains(
            "Left out by default (name the group in [files] keep to ship it): node-prebuilds (3)"
        ),
        "{said}"
    );

    let payload = fs::read_dir(&out)
        .expect("out")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.to_string_lossy().contains("npm-app-1.2.0_"))
        .expect("payload");
    let files = stdout(&run_ok(Command::new("dpkg-deb").arg("-c").arg(&payload)));
    assert!(
        files.contains(&format!(
            "node_modules/fast/prebuilds/linux-{arch}/fast.glibc.node"
        )),
        "{files}"
    );
    for left_out in ["fast.musl.node", "linux-arm64", "darwin-x64"] {
        assert!(!files.contains(left_out), "{left_out} shipped:\n{files}");
    }
    let depends = dpkg_field(&payload, "Depends");
    assert!(depends.contains("nodejs (>= 18.17.0)"), "{depends}");
    assert!(!depends.contains("nodejs (>= 18.0.0)"), "{depends}");

    assert_eq!(
        run_unpacked(&payload, &temp.path().join("unpacked"), "npm-app"),
        "loaded 60000
"
    );

    // Kept, the other platforms' modules reach strip, which cannot read them.
    let manifest = app.join("debstage.toml");
    let text = fs::read_to_string(&manifest).expect("read");
    fs::write(
        &manifest,
        text.replace("[files]\n", "[files]\nkeep = [\"node-prebuilds\"]\n"),
    )
    .expect("write");
    let error = stderr(&run_fail(&mut build_command(
        &app,
        &temp.path().join("kept"),
    )));
    assert!(error.contains("prebuilds/linux-arm64/fast.node"), "{error}");
}

/// A native module to build while `make` is missing: the error gives npm's reason and
/// names the missing tool and where it must come from.
#[test]
fn a_missing_build_tool_is_named_with_its_remedy() {
    if !node_tools_present("node without make") {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let manifest = crate::node::node_application(&temp.path().join("app"), "1.0", SINGLE_PAYLOAD);
    // A PATH with every program of /usr/bin but make.
    let bin = temp.path().join("bin");
    fs::create_dir_all(&bin).expect("mkdir");
    for entry in fs::read_dir("/usr/bin").expect("/usr/bin") {
        let entry = entry.expect("entry");
        if entry.file_name() != "make" {
            std::os::unix::fs::symlink(entry.path(), bin.join(entry.file_name())).expect("symlink");
        }
    }
    let output = run_fail(
        crate::support::debstage()
            .args(["build", "--manifest"])
            .arg(&manifest)
            .arg("--out")
            .arg(temp.path().join("out"))
            .env("PATH", &bin)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    let error = stderr(&output);
    let error = &error[error.find("error: ").unwrap_or(0)..];
    assert!(error.contains("npm says:\n  npm error"), "{error}");
    assert!(error.contains("not found: make"), "{error}");
    assert!(
        error.contains("make is not on the build machine: install it"),
        "{error}"
    );
}

/// In a build root npm writes its log where the host keeps it after the build (the
/// root's download cache), and the error gives that path as the host sees it.
#[test]
fn npm_log_paths_are_given_as_the_host_sees_them_for_a_target() {
    if !crate::e2e::harness::can_run(
        "build --target, npm error",
        &[("unshare", "util-linux"), ("chroot", "coreutils")],
    ) {
        return;
    }
    let (temp, directory) = edited_project("npm-app", r#""ms": "^2.1.3""#, STALE);
    let output = run_fail(
        crate::support::debstage()
            .args(["build", "--manifest"])
            .arg(directory.join("debstage.toml"))
            .arg("--out")
            .arg(temp.path().join("out"))
            .args(["--target", "bookworm"])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("XDG_CACHE_HOME", crate::build_target::cache_home()),
    );
    let error = stderr(&output);
    let error = &error[error.find("error: ").unwrap_or(0)..];
    assert!(error.contains("npm says:\n  npm ERR!"), "{error}");
    let log = error
        .lines()
        .find_map(|line| line.strip_prefix("npm's complete log: "))
        .unwrap_or_else(|| panic!("no log path: {error}"));
    let root = crate::build_target::build_root("bookworm");
    let kept = root.with_file_name(format!(
        "{}.cache",
        root.file_name().expect("name").to_string_lossy()
    ));
    assert!(log.starts_with(&kept.display().to_string()), "{log}");
    assert!(Path::new(log).is_file(), "{log}: not on the host");
}

/// A native module built in bookworm's build root, which has node-gyp (npm depends on
/// it) but neither make nor a compiler (build-essential is only recommended): the error
/// gives node-gyp's reason first, names `[build] packages`, and gives npm's log as the
/// host sees it after the build's layer is gone.
#[test]
fn a_native_module_without_make_in_the_build_root_names_build_packages() {
    if !crate::e2e::harness::can_run(
        "build --target, node-gyp error",
        &[("unshare", "util-linux"), ("chroot", "coreutils")],
    ) {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let cache = crate::build_target::bare_cache_home();
    let manifest = crate::node::node_application(&temp.path().join("app"), "1.0", SINGLE_PAYLOAD);
    let output = run_fail(
        crate::support::debstage()
            .args(["build", "--manifest"])
            .arg(&manifest)
            .arg("--out")
            .arg(temp.path().join("out"))
            .args(["--target", "bookworm"])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("XDG_CACHE_HOME", &cache),
    );
    let error = stderr(&output);
    let error = &error[error.find("\nerror: ").map_or(0, |at| at + 1)..];
    let log = error
        .lines()
        .find_map(|line| line.strip_prefix("npm's complete log: "))
        .unwrap_or_else(|| panic!("no log path: {error}"));
    assert!(Path::new(log).is_file(), "{log}: not on the host");
    assert!(error.contains("[build] packages"), "{error}");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.add_filter(&cache.display().to_string().replace('.', r"\."), "[CACHE]");
    settings.add_filter(
        &temp.path().display().to_string().replace('.', r"\."),
        "[TEMP]",
    );
    settings.add_filter(r"_logs/[0-9T_Z-]+-debug-0\.log", "_logs/[TIME]-debug-0.log");
    settings.add_filter(r"/tmp/debstage-stage-\w+", "[STAGE]");
    settings.add_filter(
        r"roots/[a-z]+-[a-z0-9]+\.cache",
        "roots/bookworm-[ARCH].cache",
    );
    settings.bind(|| insta::assert_snapshot!("build_node_gyp_without_make_bookworm", error));
}
