//! Every common Python project layout (`tests/projects/`, written for these tests), from
//! `debstage init` to a release that runs: setuptools flat and src layouts, `setup.py`
//! alone, hatchling, flit, poetry-core, pdm-backend, and hash-pinned requirements. For
//! each: the source tree is unchanged by the build (file list, sizes, times), two builds
//! 2 s apart without SOURCE_DATE_EPOCH give the same bytes, and the console script runs
//! from the release directory. The same layouts built for bookworm in its build root
//! install with dpkg in a bookworm root and run there.
//!
//! pip reaches PyPI for the build backends and `six`; its cache is kept under the target
//! directory (`target/pip-cache`), so a second run downloads nothing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::init::{init, project};
use crate::support::{debstage, files_in, project_root, run_ok, stderr, stdout};

/// Each file and directory of a tree with its size and modification time (ns).
fn tree_state(root: &Path) -> BTreeMap<PathBuf, (u64, i64, i64)> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|entry| entry.expect("tree entry"))
        .map(|entry| {
            let metadata = entry.path().symlink_metadata().expect("metadata");
            (
                entry
                    .path()
                    .strip_prefix(root)
                    .expect("inside")
                    .to_path_buf(),
                (metadata.len(), metadata.mtime(), metadata.mtime_nsec()),
            )
        })
        .collect()
}

/// `debstage build` without SOURCE_DATE_EPOCH; on the host with pip's cache in the
/// target directory, for a target in the build root the target tests share.
fn build(manifest: &Path, out: &Path, extra: &[&str], target: Option<&str>) -> String {
    let mut command = debstage();
    command
        .args(["build", "--manifest"])
        .arg(manifest)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env_remove("SOURCE_DATE_EPOCH");
    match target {
        Some(target) => command
            .args(["--target", target])
            .env("XDG_CACHE_HOME", crate::build_target::cache_home())
            .env_remove("PIP_CACHE_DIR"),
        None => command.env("PIP_CACHE_DIR", project_root().join("target/pip-cache")),
    };
    stderr(&run_ok(&mut command))
}

/// Runs `command` with the extracted payload (and its layer) bound at the application's
/// directory, in a private mount namespace (a tmpfs over /opt), so that nothing on the
/// host changes.
fn run_at_release(extracted: &Path, release: &str, command: &str) -> String {
    let output = run_ok(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-ec"])
            .arg(
                "mount -t tmpfs none /opt; base=$(dirname \"$2\"); mkdir -p \"$base\"; \
                 mount --bind \"$1$base\" \"$base\"; shift 2; exec \"$@\"",
            )
            .arg("sh")
            .arg(extracted)
            .arg(release)
            .arg(format!("{release}/{command}")),
    );
    stdout(&output)
}

/// The whole story for the layout `name` of [`LAYOUTS`] on the host: init, two builds,
/// the checks; gives the build's messages.
fn layout_builds_and_runs(name: &str) -> String {
    let (_, app, version, extra, script, expected) = LAYOUTS
        .iter()
        .find(|layout| layout.0 == name)
        .expect("a fixture of LAYOUTS");
    let (temp, directory) = project(name);
    init(&directory);
    let before = tree_state(&directory);
    let manifest = directory.join("debstage.toml");
    let first = temp.path().join("first");
    let second = temp.path().join("second");
    let messages = build(&manifest, &first, extra, None);
    std::thread::sleep(std::time::Duration::from_secs(2));
    build(&manifest, &second, extra, None);
    assert_eq!(
        before,
        tree_state(&directory),
        "{name}: the build changed the source tree"
    );
    let files = files_in(&first);
    assert_eq!(files, files_in(&second), "{name}");
    for file in &files {
        assert!(
            fs::read(first.join(file)).expect("first")
                == fs::read(second.join(file)).expect("second"),
            "{name}: {file} differs between two builds 2 s apart"
        );
    }
    let build_manifest = files
        .iter()
        .find(|file| file.ends_with(".build.json"))
        .expect("a build manifest");
    let document: serde_json::Value =
        serde_json::from_slice(&fs::read(first.join(build_manifest)).expect("read")).expect("JSON");
    let payload = document["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|package| package["role"] == "payload")
        .and_then(|package| package["file"].as_str())
        .map(|file| first.join(file))
        .expect("a payload");
    let listing = stdout(&run_ok(Command::new("dpkg-deb").arg("-c").arg(&payload)));
    let release = format!("/opt/{app}/{version}");
    assert!(
        listing.contains(&format!(".{release}/.debstage/activate")),
        "{name}: the hook is not shipped:\n{listing}"
    );
    for left_out in ["debstage.toml", "egg-info/SOURCES.txt", "/build/lib"] {
        assert!(
            !listing.contains(left_out),
            "{name}: {left_out} shipped:\n{listing}"
        );
    }
    let extracted = temp.path().join("extracted");
    // The payload, and the layer of its dependencies when the build wrote one.
    for package in document["packages"].as_array().expect("packages") {
        if package["role"] == "payload" || package["role"] == "layer" {
            run_ok(
                Command::new("dpkg-deb")
                    .arg("-x")
                    .arg(first.join(package["file"].as_str().expect("file")))
                    .arg(&extracted),
            );
        }
    }
    let output = run_at_release(&extracted, &release, script);
    assert_eq!(output.trim(), *expected, "{name}");
    messages
}

#[test]
fn python_setuptools_flat_layout() {
    layout_builds_and_runs("setuptools-flat");
}

#[test]
fn python_setuptools_src_layout_with_a_dynamic_version() {
    layout_builds_and_runs("setuptools-src");
}

#[test]
fn python_setup_py_only() {
    layout_builds_and_runs("setuppy");
}

#[test]
fn python_hatchling() {
    layout_builds_and_runs("hatchling");
}

#[test]
fn python_flit() {
    layout_builds_and_runs("flit");
}

#[test]
fn python_poetry_core() {
    layout_builds_and_runs("poetry");
}

#[test]
fn python_pdm_backend() {
    layout_builds_and_runs("pdm");
}

/// pip-compile's `--generate-hashes`: the pins install with their hashes required, the
/// project itself without (it has none) and without resolving its dependencies again.
#[test]
fn python_hash_pinned_requirements() {
    let messages = layout_builds_and_runs("requirements-hashes");
    assert!(messages.contains("hashes checked"), "{messages}");
}

/// A pin whose hash does not match what the index serves fails the build.
#[test]
fn python_hash_mismatch_fails() {
    let (temp, directory) = project("requirements-hashes");
    init(&directory);
    let requirements = directory.join("requirements.txt");
    let text = fs::read_to_string(&requirements).expect("read");
    fs::write(
        &requirements,
        text.replace("sha256:8abb", "sha256:0abb")
            .replace("sha256:1e61", "sha256:0e61"),
    )
    .expect("write");
    let output = crate::support::run_fail(
        debstage()
            .args(["build", "--manifest"])
            .arg(directory.join("debstage.toml"))
            .arg("--out")
            .arg(temp.path().join("out"))
            .env("PIP_CACHE_DIR", project_root().join("target/pip-cache")),
    );
    assert!(stderr(&output).contains("HASHES"), "{}", stderr(&output));
}

/// Every layout and lock, each from `debstage init`, built for bookworm in its build root
/// (one build each: two builds 2 s apart are compared on the host): the source tree is
/// unchanged, and the releases, installed together with dpkg in one bookworm root (a
/// throwaway overlay over the cached build root), run their console scripts.
#[test]
fn python_layouts_build_for_bookworm_and_run_there() {
    if !crate::e2e::harness::can_run(
        "build --target",
        &[("unshare", "util-linux"), ("chroot", "coreutils")],
    ) {
        return;
    }
    let temp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let debs = temp.path().join("debs");
    fs::create_dir(&debs).expect("mkdir");
    let mut commands = Vec::new();
    for (name, app, version, extra, script, expected) in LAYOUTS {
        let (_project, directory) = project(name);
        init(&directory);
        let before = tree_state(&directory);
        let out = temp.path().join(name);
        build(
            &directory.join("debstage.toml"),
            &out,
            extra,
            Some("bookworm"),
        );
        assert_eq!(
            before,
            tree_state(&directory),
            "{name}: the build changed the source tree"
        );
        for file in files_in(&out) {
            // The payload and its layer: stage packages need no stage here.
            let is_stage = ["-test_", "-staging_", "-production_"]
                .iter()
                .any(|stage| file.contains(stage));
            if file.ends_with(".deb") && !is_stage {
                fs::copy(out.join(&file), debs.join(&file)).expect("copy");
            }
        }
        commands.push((format!("/opt/{app}/{version}/{script}"), *expected));
    }
    let layer = temp.path().join("layer");
    let script = r#"set -e
root=$1 layer=$2 debs=$3
shift 3
mkdir "$layer/upper" "$layer/work" "$layer/merged"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$layer/upper,workdir=$layer/work" "$layer/merged"
mount -t proc proc "$layer/merged/proc"
mkdir "$layer/merged/tmp/debs"
cp "$debs"/*.deb "$layer/merged/tmp/debs/"
chroot "$layer/merged" sh -c 'dpkg -i /tmp/debs/*.deb' >&2
for command in "$@"; do
  chroot "$layer/merged" "$command"
done
"#;
    fs::create_dir(&layer).expect("mkdir");
    let output = run_ok(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .args(["sh", "-c", script, "sh"])
            .arg(crate::build_target::build_root("bookworm"))
            .arg(&layer)
            .arg(&debs)
            .args(commands.iter().map(|(command, _)| command))
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    let said: Vec<String> = stdout(&output).lines().map(str::to_string).collect();
    let expected: Vec<&str> = commands.iter().map(|(_, expected)| *expected).collect();
    assert_eq!(said, expected, "{}", stderr(&output));
}

/// A layout or lock of tests/projects: the fixture, the app, its Debian version, the
/// build's extra arguments, the console script and what it prints.
type Layout = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
);

/// Every layout and lock of tests/projects.
const LAYOUTS: &[Layout] = &[
    (
        "setuptools-flat",
        "shape-flat",
        "1.3.0",
        &[],
        "bin/shape-flat",
        "shape-flat 1.3.0: square area 4",
    ),
    (
        "setuptools-src",
        "shape-src",
        "2.0.1",
        &["--version", "2.0.1"],
        "bin/shape-src",
        "shape-src 2.0.1: circle area 3.142",
    ),
    (
        "setuppy",
        "shape-legacy",
        "0.9.2",
        &[],
        "bin/shape-legacy",
        "shape-legacy 0.9.2: triangle perimeter 12",
    ),
    (
        "hatchling",
        "shape-hatch",
        "0.4.0",
        &[],
        "bin/shape-hatch",
        "shape-hatch 0.4.0: cube volume 8",
    ),
    (
        "flit",
        "shape-flit",
        "3.1.0",
        &[],
        "bin/shape-flit",
        "shape-flit 3.1.0: rectangle area 6",
    ),
    (
        "poetry",
        "shape-poetry",
        "1.0.0~rc1",
        &[],
        "bin/shape-poetry",
        "shape-poetry 1.0.0rc1: rhombus area 12",
    ),
    (
        "pdm",
        "shape-pdm",
        "0.2.0",
        &[],
        "bin/shape-pdm",
        "shape-pdm 0.2.0: trapezoid area 9",
    ),
    (
        "requirements-hashes",
        "shape-pinned",
        "5.0.0",
        &[],
        "bin/shape-pinned",
        "shape-pinned 5.0.0: hexagon area 2.598",
    ),
    (
        "uv-lock",
        "shape-uv",
        "0.8.0",
        &[],
        "bin/shape-uv",
        "shape-uv 0.8.0: ellipse area 6.283",
    ),
    (
        "poetry-lock",
        "shape-poetry-locked",
        "1.0.0~rc1",
        &[],
        "bin/shape-poetry-locked",
        "shape-poetry-locked 1.0.0rc1: rhombus area 12",
    ),
];

/// The file list of the payload and of its layer, if any (everything but the stage
/// packages).
fn listing_of(out: &Path) -> String {
    let packages: Vec<String> = files_in(out)
        .into_iter()
        .filter(|file| {
            file.ends_with(".deb")
                && !file.contains("-test_")
                && !file.contains("-staging_")
                && !file.contains("-production_")
        })
        .collect();
    assert!(!packages.is_empty(), "a payload");
    packages
        .iter()
        .map(|package| {
            stdout(&run_ok(
                Command::new("dpkg-deb").arg("-c").arg(out.join(package)),
            ))
        })
        .collect()
}

/// uv.lock and poetry.lock: exactly the locked versions (six 1.17.0 where `>=1.15` would
/// take any), hashes checked, without the lock's dev group.
#[test]
fn python_uv_and_poetry_locks_install_the_locked_versions() {
    for name in ["uv-lock", "poetry-lock"] {
        let messages = layout_builds_and_runs(name);
        assert!(messages.contains("hashes checked"), "{messages}");
        // The lock's versions are checked when pip installs them; a layer from the cache
        // (another test built the same lock first) was keyed by those same pins.
        assert!(
            messages.contains("exactly the versions of")
                || messages.contains("Dependencies from the cached layer"),
            "{messages}"
        );
    }
    let (temp, directory) = project("uv-lock");
    init(&directory);
    let out = temp.path().join("out");
    build(&directory.join("debstage.toml"), &out, &[], None);
    let listing = listing_of(&out);
    assert!(listing.contains("six-1.17.0.dist-info/"), "{listing}");
    assert!(
        !listing.contains("tomli_w"),
        "the dev group shipped:\n{listing}"
    );
}

/// A lock that no longer matches pyproject.toml is refused with the command that
/// refreshes it.
#[test]
fn python_stale_locks_are_refused_with_the_refresh_command() {
    for (name, old, new, command) in [
        (
            "uv-lock",
            "dependencies = [\"six>=1.15\"]",
            "dependencies = [\"six>=1.16\"]",
            "uv lock",
        ),
        (
            "poetry-lock",
            "six = \"^1.15\"",
            "six = \"^1.16\"",
            "poetry lock",
        ),
    ] {
        let (temp, directory) = project(name);
        init(&directory);
        let pyproject = directory.join("pyproject.toml");
        let text = fs::read_to_string(&pyproject).expect("read");
        assert!(text.contains(old), "{name}");
        fs::write(&pyproject, text.replace(old, new)).expect("write");
        let output = crate::support::run_fail(
            debstage()
                .args(["build", "--manifest"])
                .arg(directory.join("debstage.toml"))
                .arg("--out")
                .arg(temp.path().join("out")),
        );
        let message = stderr(&output);
        assert!(
            message.contains("[environment] lock")
                && message.contains("does not match pyproject.toml")
                && message.contains(command),
            "{name}: {message}"
        );
    }
}

/// Only a requirements.txt and a script: the files beside it are the application, copied
/// into the release beside the environment, without what is not the application (the
/// manifest, a `.env`, an `--out` inside the directory).
#[test]
fn python_requirements_only() {
    let (temp, directory) = project("requirements-only");
    fs::write(directory.join(".env"), "TOKEN=secret\n").expect("write");
    let manifest = init(&directory);
    assert!(manifest.contains("source = \".\""), "{manifest}");
    let out = directory.join("dist");
    for _ in 0..2 {
        let messages = build(
            &directory.join("debstage.toml"),
            &out,
            &["--version", "0.1.0"],
            None,
        );
        assert!(messages.contains("Left out of the release"), "{messages}");
    }
    let listing = listing_of(&out);
    assert!(
        listing.contains("/opt/requirements-only/0.1.0/report.py"),
        "{listing}"
    );
    for left_out in ["/dist/", "debstage.toml", "/.env"] {
        assert!(
            !listing.contains(left_out),
            "{left_out} shipped:\n{listing}"
        );
    }
    let extracted = temp.path().join("extracted");
    // The payload and the layer of its dependencies.
    for package in files_in(&out).into_iter().filter(|file| {
        file.starts_with("requirements-only-0.1.0_") || file.starts_with("requirements-only-layer-")
    }) {
        run_ok(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(out.join(package))
                .arg(&extracted),
        );
    }
    let release = "/opt/requirements-only/0.1.0";
    let output = run_ok(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-ec"])
            .arg("mount -t tmpfs none /opt; mkdir -p /opt/requirements-only; mount --bind \"$1/opt/requirements-only\" /opt/requirements-only; exec \"$2/bin/python\" \"$2/report.py\"")
            .arg("sh")
            .arg(&extracted)
            .arg(release),
    );
    assert_eq!(stdout(&output).trim(), "report: ready");
}

/// Two fresh clones of one commit of a Python project (every file with its clone's time)
/// build the same bytes without SOURCE_DATE_EPOCH: the commit's time stamps the packages.
#[test]
fn python_two_git_clones_build_the_same_bytes() {
    let (temp, directory) = project("hatchling");
    init(&directory);
    let git = |arguments: &[&str], at: &Path| {
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(at)
                .args(arguments)
                .env("GIT_AUTHOR_NAME", "Test")
                .env("GIT_AUTHOR_EMAIL", "test@example.org")
                .env("GIT_COMMITTER_NAME", "Test")
                .env("GIT_COMMITTER_EMAIL", "test@example.org")
                .env("GIT_AUTHOR_DATE", "@1695000000 +0000")
                .env("GIT_COMMITTER_DATE", "@1695000000 +0000"),
        )
    };
    git(&["init", "-q", "-b", "main"], &directory);
    git(&["add", "-A"], &directory);
    git(&["commit", "-q", "-m", "shape-hatch"], &directory);
    let mut payloads = Vec::new();
    for clone in ["one", "two"] {
        let path = temp.path().join(clone);
        run_ok(
            Command::new("git")
                .args(["clone", "-q"])
                .arg(&directory)
                .arg(&path),
        );
        let out = temp.path().join(format!("out-{clone}"));
        let messages = build(&path.join("debstage.toml"), &out, &[], None);
        assert!(messages.contains("the last commit"), "{messages}");
        payloads.push(fs::read(out.join("shape-hatch-0.4.0_0.4.0-1_all.deb")).expect("payload"));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert!(
        payloads[0] == payloads[1],
        "two clones gave different bytes"
    );
}

/// Writes the sdist `vendor/fastsum-1.0.tar.gz` into `directory` and a requirements file
/// that names it: a setuptools project with a C extension whose source stops the
/// compiler on purpose (`#error`), the way a dependency that does not build fails.
fn failing_sdist_project(directory: &Path) {
    let source = tempfile::tempdir().expect("temp dir");
    let package = source.path().join("fastsum-1.0");
    fs::create_dir_all(package.join("fastsum")).expect("mkdir");
    for (name, text) in [
        (
            "setup.py",
            "from setuptools import Extension, setup\n\nsetup(\n    name=\"fastsum\",\n    \
             version=\"1.0\",\n    packages=[\"fastsum\"],\n    \
             ext_modules=[Extension(\"fastsum._sum\", [\"sum.c\"])],\n)\n",
        ),
        (
            "PKG-INFO",
            "Metadata-Version: 2.1\nName: fastsum\nVersion: 1.0\n",
        ),
        (
            "sum.c",
            "#error \"fastsum 1.0 does not compile: this failure is on purpose\"\n",
        ),
        ("fastsum/__init__.py", ""),
    ] {
        fs::write(package.join(name), text).expect("write");
    }
    fs::create_dir_all(directory.join("vendor")).expect("mkdir");
    run_ok(
        Command::new("tar")
            .arg("-czf")
            .arg(directory.join("vendor/fastsum-1.0.tar.gz"))
            .arg("-C")
            .arg(source.path())
            .arg("fastsum-1.0"),
    );
    fs::write(
        directory.join("requirements.txt"),
        "./vendor/fastsum-1.0.tar.gz\n",
    )
    .expect("write");
}

/// A dependency given as an sdist whose C extension does not build: on the host the
/// compiler's error comes first; in bookworm's build root (no compiler) the missing
/// `gcc` is named with `[build] packages`. Either way pip's log is kept in the output
/// directory, where the error says it is.
#[test]
fn a_failing_sdist_says_why_and_keeps_pips_log() {
    let targets: &[Option<&str>] = if crate::e2e::harness::can_run(
        "build --target, pip error",
        &[("unshare", "util-linux"), ("chroot", "coreutils")],
    ) {
        &[None, Some("bookworm")]
    } else {
        &[None]
    };
    let (temp, directory) = project("requirements-only");
    failing_sdist_project(&directory);
    init(&directory);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.add_filter(
        &temp.path().display().to_string().replace('.', r"\."),
        "[TEMP]",
    );
    settings.add_filter(r"/tmp/debstage-stage-\w+", "[STAGE]");
    settings.add_filter(r"\b[a-z0-9_]+-linux-gnu-gcc\b", "[CC]");
    // The compiler's command line, with the machine's flags.
    settings.add_filter(
        r"Command '\[.*\]' returned",
        "Command '[ARGUMENTS]' returned",
    );
    for target in targets {
        let out = temp
            .path()
            .join(format!("out-{}", target.unwrap_or("host")));
        let mut command = debstage();
        command
            .args(["build", "--manifest"])
            .arg(directory.join("debstage.toml"))
            .arg("--out")
            .arg(&out)
            .args(["--version", "0.1.0"])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("PIP_CACHE_DIR", project_root().join("target/pip-cache"));
        if let Some(target) = target {
            command
                .args(["--target", target])
                .env("XDG_CACHE_HOME", crate::build_target::bare_cache_home())
                .env_remove("PIP_CACHE_DIR");
        }
        let error = stderr(&crate::support::run_fail(&mut command));
        let error = &error[error.find("\nerror: ").map_or(0, |at| at + 1)..];
        let log = error
            .lines()
            .find_map(|line| line.strip_prefix("pip's output: "))
            .unwrap_or_else(|| panic!("no log path: {error}"));
        assert!(log.starts_with(&out.display().to_string()), "{log}");
        let text = fs::read_to_string(log).unwrap_or_else(|_| panic!("{log}: not on the host"));
        assert!(text.contains("fastsum"), "{log}: {text}");
        if target.is_some() {
            assert!(error.contains("gcc is not in the build root"), "{error}");
            assert!(error.contains("[build] packages"), "{error}");
        }
        let name = format!("pip_sdist_fails_{}", target.unwrap_or("host"));
        settings.bind(|| insta::assert_snapshot!(name, error));
    }
}

/// The package index of `tests/support/package_index.py` on 127.0.0.1, stopped when
/// dropped.
struct PackageIndex {
    child: std::process::Child,
    directory: tempfile::TempDir,
    port: u16,
}

impl PackageIndex {
    fn start() -> PackageIndex {
        let directory = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new("/usr/bin/python3")
            .arg(project_root().join("tests/support/package_index.py"))
            .arg(directory.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("package index starts");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("port");
        let port = line.trim().parse().expect("a port");
        PackageIndex {
            child,
            directory,
            port,
        }
    }

    /// How many times the wheel was fetched.
    fn wheel_fetches(&self) -> usize {
        fs::read_to_string(self.directory.path().join("requests.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.ends_with(".whl"))
            .count()
    }
}

impl Drop for PackageIndex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// pip's download cache in a build root outlives the build's layer: a second `--target`
/// build of the same project takes the wheel from the root's cache directory instead of
/// fetching it again. The index sends PyPI's cache headers; pip keeps nothing an index
/// does not let it keep (an HTTP proxy that strips Cache-Control leaves the cache empty).
#[test]
fn pips_cache_in_a_build_root_serves_the_next_build() {
    if !crate::e2e::harness::can_run(
        "build --target, pip cache",
        &[
            ("unshare", "util-linux"),
            ("chroot", "coreutils"),
            ("openssl", "openssl"),
        ],
    ) {
        return;
    }
    let index = PackageIndex::start();
    let (temp, directory) = project("requirements-only");
    fs::write(directory.join("requirements.txt"), "cachedpkg==1.0\n").expect("write");
    let manifest = init(&directory);
    let address = format!("127.0.0.1:{}", index.port);
    fs::write(
        directory.join("debstage.toml"),
        manifest.replacen(
            "kind = \"python\"\n",
            &format!(
                "kind = \"python\"\npip-args = [\"--index-url\", \"https://{address}/simple/\", \
                 \"--trusted-host\", \"{address}\"]\n"
            ),
            1,
        ),
    )
    .expect("write");
    let root = crate::build_target::build_root("bookworm");
    let cache = root.with_file_name(format!(
        "{}.cache",
        root.file_name().expect("name").to_string_lossy()
    ));
    let mut times = Vec::new();
    for (round, fetches) in [("first", 1), ("second", 1)] {
        let started = std::time::Instant::now();
        build(
            &directory.join("debstage.toml"),
            &temp.path().join(round),
            &["--version", "0.1.0"],
            Some("bookworm"),
        );
        times.push(started.elapsed().as_secs_f64());
        // The index's port is new in each run, and so is the wheel's URL: the first
        // build fetches it, the second takes it from the cache.
        assert_eq!(index.wheel_fetches(), fetches, "{round} build");
    }
    let cached = walkdir::WalkDir::new(cache.join("pip"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .count();
    assert!(cached > 0, "{}: pip kept nothing", cache.display());
    crate::e2e::harness::shout(&format!(
        "pip cache in the build root: {cached} files; builds {:.1} s then {:.1} s",
        times[0], times[1]
    ));
}
