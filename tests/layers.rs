//! Layered Python releases (issue 21): the third-party dependencies in
//! `<app>-layer-<key>`, the same bytes for a code-only release, another key for another
//! dependency, and a release that runs (console scripts, `pip check`) at its path.
//!
//! The fixture is `tally`, a project written here: one module and one small real
//! dependency with a console script (tabulate, from PyPI once, then from
//! `target/layer-wheels`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use crate::support::{debstage, project_root, run_ok, sha256_file};

/// The wheels the fixture needs: two versions of its dependency and its build backend.
const WHEELS: &[&str] = &["tabulate==0.9.0", "tabulate==0.8.10", "flit_core==3.9.0"];

static DOWNLOAD: Mutex<()> = Mutex::new(());

/// The local wheel directory, filled from PyPI by Debian's pip the first time.
pub fn wheel_dir() -> PathBuf {
    let directory = project_root().join("target/layer-wheels");
    let _guard = DOWNLOAD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for requirement in WHEELS {
        let prefix = requirement.replace("==", "-").to_lowercase();
        let present = fs::read_dir(&directory).is_ok_and(|entries| {
            entries.filter_map(|entry| entry.ok()).any(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .to_lowercase()
                    .starts_with(&format!("{prefix}-"))
            })
        });
        if !present {
            run_ok(
                Command::new("/usr/bin/python3")
                    .args(["-m", "pip", "download", "--disable-pip-version-check", "-q"])
                    .args(["--only-binary", ":all:", "--no-deps", "-d"])
                    .arg(&directory)
                    .arg(requirement),
            );
        }
    }
    directory
}

/// The `tally` module: `main` prints a row naming the version and a marker; `serve` (the
/// service) answers each GET with that row, tabulate's version and the file it came from.
const TALLY_MODULE: &str = r#""""Prints a table, or serves it over HTTP."""
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import tabulate as module
from tabulate import tabulate

ROW = ["tally", "v@VERSION@", "@MARKER@"]


def main():
    print(tabulate([ROW]))


def serve():
    """Answers GET with the table, tabulate's version and its file (port: PORT)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"{tabulate([ROW])}\n{module.__version__} {module.__file__}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// Writes the `tally` project at `version` into `directory`: tabulate at `tabulate`, a
/// `marker` in its code, and `layers` as extra manifest lines.
pub fn write_tally(directory: &Path, version: &str, tabulate: &str, marker: &str, layers: &str) {
    fs::create_dir_all(directory.join("tally")).expect("mkdir");
    fs::write(
        directory.join("debstage.toml"),
        format!(
            "[package]\nname = \"tally\"\nversion = \"{version}\"\n\
             maintainer = \"Release Engineering <release@example.com>\"\n\
             description = \"\"\"\nTable printer used to test layered releases\n\
             It prints a table with tabulate.\"\"\"\nlicense = \"MIT\"\n\n\
             [environment]\nkind = \"python\"\ninterpreter = \"/usr/bin/python3\"\n\
             requirements = \"requirements.txt\"\nproject = \".\"\n{layers}"
        ),
    )
    .expect("write manifest");
    fs::write(
        directory.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"flit_core==3.9.0\"]\n\
             build-backend = \"flit_core.buildapi\"\n\n[project]\nname = \"tally\"\n\
             version = \"{version}\"\ndescription = \"Prints a table\"\n\
             dependencies = [\"tabulate=={tabulate}\"]\n\n[project.scripts]\n\
             tally = \"tally:main\"\ntally-serve = \"tally:serve\"\n"
        ),
    )
    .expect("write pyproject");
    fs::write(
        directory.join("requirements.txt"),
        format!("tabulate=={tabulate}\n"),
    )
    .expect("write requirements");
    fs::write(
        directory.join("tally/__init__.py"),
        TALLY_MODULE
            .replace("@VERSION@", version)
            .replace("@MARKER@", marker),
    )
    .expect("write module");
}

/// `debstage build` of `manifest` into `out` at `epoch`, pip pointed at the local wheels;
/// gives the build manifest and the command's output. The layer cache is
/// `<out>/../layer-cache` (`XDG_CACHE_HOME`), one per test.
pub fn build_tally(manifest: &Path, out: &Path, epoch: &str) -> (serde_json::Value, Output) {
    build_tally_from(manifest, out, epoch, &wheel_dir())
}

/// [`build_tally`] with pip's wheels taken from `wheels` only.
fn build_tally_from(
    manifest: &Path,
    out: &Path,
    epoch: &str,
    wheels: &Path,
) -> (serde_json::Value, Output) {
    let output = run_ok(&mut tally_command(manifest, out, epoch, wheels));
    let document =
        serde_json::from_slice(&output.stdout).expect("build prints its manifest as JSON");
    crate::support::schema::assert_valid("build", &document);
    (document, output)
}

/// The `debstage build` command of [`build_tally_from`].
fn tally_command(manifest: &Path, out: &Path, epoch: &str, wheels: &Path) -> Command {
    let cache = out.parent().expect("out has a parent").join("layer-cache");
    let mut command = debstage();
    command
        .args(["--format", "json", "build", "--manifest"])
        .arg(manifest)
        .arg("--out")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", epoch)
        .env("XDG_CACHE_HOME", &cache)
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", wheels);
    command
}

/// The first release of `tally` (1.0, tabulate 0.9.0) in a new temporary directory:
/// the directory, the project's path, the output directory, and the build manifest.
fn first_release() -> (tempfile::TempDir, PathBuf, PathBuf, serde_json::Value) {
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("tally");
    let first_out = temp.path().join("first");
    write_tally(&app, "1.0", "0.9.0", "one", "");
    let (first, _) = build_tally(&app.join("debstage.toml"), &first_out, "1700000000");
    (temp, app, first_out, first)
}

/// The file of the package with `role` in a build manifest, if any.
pub fn file_of(document: &serde_json::Value, role: &str) -> Option<String> {
    document["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|package| package["role"] == role)
        .map(|package| package["file"].as_str().expect("file").to_string())
}

fn field(deb: &Path, name: &str) -> String {
    let output = run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn contents(deb: &Path) -> String {
    String::from_utf8_lossy(&run_ok(Command::new("dpkg-deb").arg("-c").arg(deb)).stdout)
        .into_owned()
}

#[test]
fn a_code_only_release_shares_its_layer_byte_for_byte_and_runs() {
    let (temp, app, first_out, first) = first_release();
    let layer_file = file_of(&first, "layer").expect("a python build writes a layer");
    let payload_file = file_of(&first, "payload").expect("payload");

    // A code-only release, built later into another directory with another layer cache
    // (so the layer is installed and written again, not taken from the first build): the
    // same layer, byte for byte.
    let second_out = temp.path().join("elsewhere/second");
    write_tally(&app, "1.1", "0.9.0", "two", "");
    let (second, _) = build_tally(&app.join("debstage.toml"), &second_out, "1700009999");
    assert_eq!(
        file_of(&second, "layer").as_deref(),
        Some(layer_file.as_str())
    );
    assert_eq!(
        sha256_file(&first_out.join(&layer_file)),
        sha256_file(&second_out.join(&layer_file)),
        "the layer of a code-only release differs"
    );
    let layer = second_out.join(&layer_file);
    let key = layer_file
        .trim_start_matches("tally-layer-")
        .split('_')
        .next()
        .expect("key")
        .to_string();
    assert_eq!(field(&layer, "Version"), "1");
    let payload = second_out.join(file_of(&second, "payload").expect("payload"));
    let depends = field(&payload, "Depends");
    assert!(
        depends.contains(&format!("tally-layer-{key} (= 1)")),
        "{depends}"
    );
    // The dependency's files are in the layer, the application's in the release.
    let layer_listing = contents(&layer);
    assert!(
        layer_listing.contains(&format!("./opt/tally/.layers/{key}/site-packages/tabulate")),
        "{layer_listing}"
    );
    assert!(!layer_listing.contains("/opt/tally/1."), "{layer_listing}");
    let payload_listing = contents(&payload);
    assert!(!payload_listing.contains("tabulate/"), "{payload_listing}");
    assert!(
        !payload_listing.contains("tabulate-0.9.0.dist-info"),
        "{payload_listing}"
    );
    assert!(
        payload_listing.contains("site-packages/tally/__init__.py"),
        "{payload_listing}"
    );

    // Installed side by side at their paths: the application, the dependency's console
    // script (in the release's bin/, with the release's interpreter) and pip check.
    let root = temp.path().join("root");
    for deb in [&payload, &layer] {
        run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    }
    let script =
        fs::read_to_string(root.join("opt/tally/1.1/bin/tabulate")).expect("console script");
    assert!(
        script.starts_with("#!/opt/tally/1.1/bin/python\n"),
        "{script}"
    );
    let output = run_ok(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-ec"])
            .arg(
                "mount -t tmpfs none /opt; mkdir -p /opt/tally; \
                 mount --bind \"$1/opt/tally\" /opt/tally; \
                 /opt/tally/1.1/bin/tally; \
                 printf 'a b\\n1 2\\n' | /opt/tally/1.1/bin/tabulate; \
                 /opt/tally/1.1/bin/python -c 'import tabulate; print(tabulate.__file__)'; \
                 /usr/bin/python3 -m pip --disable-pip-version-check \
                   --python /opt/tally/1.1/bin/python check",
            )
            .arg("sh")
            .arg(&root),
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("tally  v1.1  two"), "{text}");
    assert!(text.contains("a  b"), "{text}");
    assert!(
        text.contains(&format!(
            "/opt/tally/.layers/{key}/site-packages/tabulate/__init__.py"
        )),
        "{text}"
    );
    assert!(text.contains("No broken requirements found."), "{text}");

    // lintian: nothing beyond the shipped overrides, for the layer and the release.
    crate::support::assert_lintian_clean(&[&layer, &payload]);

    // A build into a directory that holds the layer already takes it as it is: the same
    // file (inode), not a new one.
    use std::os::unix::fs::MetadataExt;
    let inode = |path: &Path| fs::metadata(path).expect("layer").ino();
    let before = inode(&first_out.join(&layer_file));
    let (again, _) = build_tally(&app.join("debstage.toml"), &first_out, "1700009999");
    assert_eq!(
        file_of(&again, "layer").as_deref(),
        Some(layer_file.as_str())
    );
    assert_eq!(
        inode(&first_out.join(&layer_file)),
        before,
        "the layer was written again"
    );
    assert!(first_out.join(&payload_file).is_file());

    // Another version of the dependency: another key.
    let third_out = temp.path().join("third");
    write_tally(&app, "1.2", "0.8.10", "three", "");
    let (third, _) = build_tally(&app.join("debstage.toml"), &third_out, "1700019999");
    let third_layer = file_of(&third, "layer").expect("layer");
    assert_ne!(third_layer, layer_file, "a changed dependency kept the key");
}

#[test]
fn layers_disabled_keep_one_payload() {
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("tally");
    write_tally(&app, "1.0", "0.9.0", "one", "\n[layers]\nenabled = false\n");
    let out = temp.path().join("out");
    let (document, _) = build_tally(&app.join("debstage.toml"), &out, "1700000000");
    assert_eq!(file_of(&document, "layer"), None);
    let payload = out.join(file_of(&document, "payload").expect("payload"));
    let listing = contents(&payload);
    assert!(
        listing.contains("site-packages/tabulate/__init__.py"),
        "{listing}"
    );
    assert!(!listing.contains(".layers"), "{listing}");
    assert!(!field(&payload, "Depends").contains("-layer-"));
}

/// Runs `debstage repo --repo REPO ARGUMENTS` and gives its stdout; it must succeed.
pub(crate) fn repo_ok(repo: &Path, arguments: &[&str]) -> String {
    let output = run_ok(
        debstage()
            .args(["repo", "--repo"])
            .arg(repo)
            .args(arguments)
            .env("USER", "tester"),
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a `debstage repo` command that must fail; gives its stderr.
fn repo_fails(repo: &Path, arguments: &[&str]) -> String {
    let output = crate::support::run_fail(
        debstage()
            .args(["repo", "--repo"])
            .arg(repo)
            .args(arguments)
            .env("USER", "tester"),
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `(Package, Version)` pairs a suite's published Packages file lists, but for the
/// repository's keyring package (every suite lists it from `repo init` on: `keys::` and
/// `repo::` check it).
pub(crate) fn published(repo: &Path, suite: &str) -> Vec<(String, String)> {
    let architecture =
        String::from_utf8_lossy(&run_ok(Command::new("dpkg").arg("--print-architecture")).stdout)
            .trim()
            .to_string();
    let text =
        fs::read_to_string(repo.join(format!("dists/{suite}/main/binary-{architecture}/Packages")))
            .expect("Packages");
    let mut pairs = Vec::new();
    let mut package = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("Package: ") {
            package = name.to_string();
        } else if let Some(version) = line.strip_prefix("Version: ") {
            pairs.push((package.clone(), version.to_string()));
        }
    }
    pairs.retain(|(package, _)| !package.ends_with("-archive-keyring"));
    pairs.sort();
    pairs
}

/// The repository keeps each layer once, moves it with the releases that name it, never
/// lists a release without it, and deletes it only when no kept release needs it.
#[test]
fn the_repository_moves_keeps_and_collects_layers_with_their_releases() {
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("tally");
    let out = temp.path().join("out");
    let mut manifests = Vec::new();
    let mut layers = Vec::new();
    for (version, tabulate, epoch) in [
        ("1.0", "0.9.0", "1700000000"),
        ("1.1", "0.9.0", "1700001000"),
        ("1.2", "0.8.10", "1700002000"),
    ] {
        write_tally(&app, version, tabulate, version, "");
        let (document, _) = build_tally(&app.join("debstage.toml"), &out, epoch);
        layers.push(
            file_of(&document, "layer")
                .expect("layer")
                .split('_')
                .next()
                .expect("name")
                .to_string(),
        );
        manifests.push(out.join(format!("tally_{version}-1.build.json")));
    }
    let (old_layer, new_layer) = (layers[0].clone(), layers[2].clone());
    assert_eq!(layers[1], old_layer);
    assert_ne!(new_layer, old_layer);
    let text = |path: &Path| path.to_str().expect("UTF-8 path").to_string();

    // A release without its layer is refused, in a repository that lacks the layer.
    let repo = temp.path().join("repo");
    repo_ok(&repo, &["init", "--arch", "amd64"]);
    let payload_only = out.join("tally-1.0_1.0-1_all.deb");
    let error = repo_fails(&repo, &["add", "test", &text(&payload_only)]);
    assert!(
        error.contains(&format!("depends on its layer {old_layer} (= 1)")),
        "{error}"
    );
    assert!(!repo.join("dists/test").exists() || published(&repo, "test").is_empty());

    for manifest in &manifests {
        repo_ok(&repo, &["add", "test", "--manifest", &text(manifest)]);
    }
    // One file per layer in the pool, whatever the number of releases that name it.
    let pool: Vec<String> = walkdir::WalkDir::new(repo.join("pool"))
        .into_iter()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("-layer-"))
        .collect();
    assert_eq!(pool.len(), 2, "{pool:?}");
    let test = published(&repo, "test");
    for layer in [&old_layer, &new_layer] {
        assert!(test.contains(&(layer.clone(), "1".to_string())), "{test:?}");
    }

    // Other bytes under a layer's name and version are refused.
    let unpacked = temp.path().join("unpacked");
    let layer_deb = out.join(format!("{old_layer}_1_all.deb"));
    let layer_deb = if layer_deb.is_file() {
        layer_deb
    } else {
        crate::support::files_in(&out)
            .into_iter()
            .find(|name| name.starts_with(&format!("{old_layer}_")))
            .map(|name| out.join(name))
            .expect("the layer's file")
    };
    run_ok(
        Command::new("dpkg-deb")
            .arg("-R")
            .arg(&layer_deb)
            .arg(&unpacked),
    );
    fs::write(unpacked.join("opt/tally/extra.txt"), "other bytes\n").expect("write");
    let forged = temp.path().join("forged.deb");
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-b"])
            .arg(&unpacked)
            .arg(&forged),
    );
    let error = repo_fails(&repo, &["add", "test", &text(&forged)]);
    assert!(error.contains(&old_layer), "{error}");

    // Promote and roll back carry the layer.
    repo_ok(&repo, &["promote", "tally", "1.1", "--to", "staging"]);
    let staging = published(&repo, "staging");
    assert!(
        staging.contains(&(old_layer.clone(), "1".to_string())),
        "{staging:?}"
    );
    assert!(
        !staging.iter().any(|(package, _)| *package == new_layer),
        "{staging:?}"
    );
    repo_ok(&repo, &["promote", "tally", "1.2", "--to", "staging"]);
    let staging = published(&repo, "staging");
    for layer in [&old_layer, &new_layer] {
        assert!(
            staging.contains(&(layer.clone(), "1".to_string())),
            "{staging:?}"
        );
    }
    repo_ok(&repo, &["rollback", "tally", "staging"]);
    // What `repo show` says of layers, pinned (the keys depend on the interpreter and the
    // architecture, so they are filtered).
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.add_filter(r"-layer-[0-9a-f]{16}", "-layer-[KEY]");
    settings.bind(|| {
        insta::assert_snapshot!("layers_repo_show", repo_ok(&repo, &["show", "tally"]));
    });
    let shown: serde_json::Value =
        serde_json::from_str(&repo_ok(&repo, &["--format", "json", "show", "tally"]))
            .expect("JSON");
    crate::support::schema::assert_valid("repo-show", &shown);
    assert_eq!(shown["stages"][1]["current"], "1.1-1");
    assert_eq!(
        shown["versions"],
        serde_json::json!(["1.0-1", "1.1-1", "1.2-1"])
    );
    let shared = shown["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .find(|layer| layer["package"] == old_layer.as_str())
        .expect("the shared layer");
    assert_eq!(shared["releases"], serde_json::json!(["1.0-1", "1.1-1"]));
    repo_ok(&repo, &["verify"]);
    // A layer's version (`1`) names no release: promote and remove refuse it.
    let before = published(&repo, "staging");
    for arguments in [
        ["promote", "tally", "1", "--to", "staging"].as_slice(),
        ["remove", "tally", "1"].as_slice(),
    ] {
        let error = repo_fails(&repo, arguments);
        assert!(
            error
                .contains("tally 1: no such version in the repository; it has 1.0-1, 1.1-1, 1.2-1"),
            "{error}"
        );
    }
    assert_eq!(published(&repo, "staging"), before);

    // gc: 1.0 goes (no stage points to it); its layer stays, as 1.1 (staging) needs it.
    repo_ok(&repo, &["gc", "--keep", "0"]);
    let listed = repo_ok(&repo, &["list"]);
    assert!(!listed.contains("tally-1.0 "), "{listed}");
    assert!(listed.contains(&old_layer), "{listed}");
    repo_ok(&repo, &["verify"]);
    // Once no kept release needs it, the layer goes too.
    repo_ok(&repo, &["promote", "tally", "1.2", "--to", "staging"]);
    repo_ok(&repo, &["gc", "--keep", "0"]);
    let listed = repo_ok(&repo, &["list"]);
    assert!(!listed.contains(&old_layer), "{listed}");
    assert!(listed.contains(&new_layer), "{listed}");
    let staging = published(&repo, "staging");
    assert!(
        staging.contains(&(new_layer.clone(), "1".to_string())),
        "{staging:?}"
    );
    repo_ok(&repo, &["verify"]);
}

/// A code-only release whose dependencies are all pinned takes its layer from the cache
/// of the build before: pip installs the project alone (the wheels it is given here do not
/// even hold the dependency), and the layer is the same, byte for byte.
#[test]
fn a_cached_layer_skips_pip_for_the_dependencies() {
    let (temp, app, first_out, first) = first_release();
    let layer_file = file_of(&first, "layer").expect("layer");
    let cached: Vec<PathBuf> = fs::read_dir(temp.path().join("layer-cache/debstage/layers"))
        .expect("the layer cache was written")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].join("scripts/tabulate").is_file());
    // The layer's .deb is kept there too: the next build of the recipe does not
    // compress the layer again.
    assert!(cached[0].join(&layer_file).is_file());

    // Only the build backend: tabulate cannot come from pip.
    let backend_only = temp.path().join("backend-only");
    fs::create_dir_all(&backend_only).expect("mkdir");
    for entry in fs::read_dir(wheel_dir())
        .expect("wheels")
        .filter_map(|entry| entry.ok())
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("flit_core-")
        {
            fs::copy(entry.path(), backend_only.join(entry.file_name())).expect("copy");
        }
    }
    write_tally(&app, "1.1", "0.9.0", "two", "");
    let second_out = temp.path().join("second");
    let (second, _) = build_tally_from(
        &app.join("debstage.toml"),
        &second_out,
        "1700005000",
        &backend_only,
    );
    assert_eq!(
        file_of(&second, "layer").as_deref(),
        Some(layer_file.as_str())
    );
    assert_eq!(
        sha256_file(&first_out.join(&layer_file)),
        sha256_file(&second_out.join(&layer_file))
    );
    // The release still has the dependency's console script, for its own interpreter.
    let payload = second_out.join(file_of(&second, "payload").expect("payload"));
    let root = temp.path().join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&payload).arg(&root));
    let script =
        fs::read_to_string(root.join("opt/tally/1.1/bin/tabulate")).expect("console script");
    assert!(
        script.starts_with("#!/opt/tally/1.1/bin/python\n"),
        "{script}"
    );
    let pth = fs::read_to_string(root.join(format!(
        "opt/tally/1.1/lib/python{}/site-packages/debstage-layer.pth",
        crate::python::python_minor()
    )))
    .expect("the layer's .pth");
    assert!(pth.contains("/opt/tally/.layers/"), "{pth}");

    // An unpinned requirement has no recipe: the dependencies are installed again.
    fs::write(app.join("requirements.txt"), "tabulate>=0.9\n").expect("write");
    let third_out = temp.path().join("third");
    let output = crate::support::run_fail(&mut tally_command(
        &app.join("debstage.toml"),
        &third_out,
        "1700005000",
        &backend_only,
    ));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("tabulate"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The native node application of `tests/node.rs` at `version`, printing `marker`; without
/// its `dotty` dependency when `dotty` is false (another dependency set: another layer);
/// `extra` is appended to its manifest.
pub fn write_nodeapp(
    directory: &Path,
    version: &str,
    marker: &str,
    dotty: bool,
    extra: &str,
) -> PathBuf {
    let manifest = crate::node::node_application(directory, version, extra);
    let uses_dotty = if dotty { ", require('dotty')" } else { "" };
    fs::write(
        directory.join("server.js"),
        format!("console.log(require('addon').hello(){uses_dotty}, {marker:?});\n"),
    )
    .expect("write server.js");
    if !dotty {
        fs::write(
            directory.join("package.json"),
            "{\n  \"name\": \"nodeapp\",\n  \"version\": \"1.0.0\",\n  \"private\": true,\n  \
             \"dependencies\": {\n    \"addon\": \"file:vendor/addon\"\n  }\n}\n",
        )
        .expect("write package.json");
        run_ok(
            Command::new("npm")
                .args(["install", "--package-lock-only", "--offline"])
                .args(["--no-audit", "--no-fund"])
                .current_dir(directory),
        );
    }
    manifest
}

/// `debstage build` of a node application into `out` (a directory of its own), the layer
/// cache in `cache`; gives the build manifest it wrote and what the build said on stderr.
pub fn build_node(
    manifest: &Path,
    out: &Path,
    cache: &Path,
    epoch: &str,
) -> (serde_json::Value, String) {
    let output = run_ok(
        debstage()
            .args(["build", "--manifest"])
            .arg(manifest)
            .arg("--out")
            .arg(out)
            .env("SOURCE_DATE_EPOCH", epoch)
            .env("XDG_CACHE_HOME", cache),
    );
    let written: Vec<String> = crate::support::files_in(out)
        .into_iter()
        .filter(|name| name.ends_with(".build.json"))
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let document = serde_json::from_slice(&fs::read(out.join(&written[0])).expect("read"))
        .expect("a build manifest");
    (
        document,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_node_code_only_release_takes_its_layer_and_installs_nothing() {
    if !crate::node::node_tools_present("a_node_code_only_release_takes_its_layer") {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("nodeapp");
    let cache = temp.path().join("cache");
    let manifest = write_nodeapp(&app, "1.0", "one", true, "");
    let first_out = temp.path().join("first");
    let (first, said) = build_node(&manifest, &first_out, &cache, "1700000000");
    let layer_file = file_of(&first, "layer").expect("a node build writes a layer");
    let key = layer_file
        .trim_start_matches("nodeapp-layer-")
        .split('_')
        .next()
        .expect("key")
        .to_string();
    assert!(said.contains("Dependencies in layer"), "{said}");
    let layer = first_out.join(&layer_file);
    let payload = first_out.join(file_of(&first, "payload").expect("payload"));

    // The layer holds node_modules with the native module, bound to the build's ABI; the
    // release a link to it and the application's code.
    let layer_listing = contents(&layer);
    let prefix = format!("./opt/nodeapp/.layers/{key}/node_modules");
    assert!(
        layer_listing.contains(&format!("{prefix}/addon/build/Release/addon.node")),
        "{layer_listing}"
    );
    assert!(
        layer_listing.contains(&format!("{prefix}/dotty/index.js")),
        "{layer_listing}"
    );
    assert!(
        !layer_listing.contains(".package-lock.json"),
        "{layer_listing}"
    );
    assert!(!layer_listing.contains(".npmignore"), "{layer_listing}");
    assert!(!layer_listing.contains("obj.target"), "{layer_listing}");
    assert!(
        field(&layer, "Depends").contains("nodejs (>= "),
        "{}",
        field(&layer, "Depends")
    );
    let payload_listing = contents(&payload);
    assert!(
        payload_listing.contains(&format!(
            "./opt/nodeapp/1.0/node_modules -> ../.layers/{key}/node_modules"
        )),
        "{payload_listing}"
    );
    assert!(!payload_listing.contains("addon.node"), "{payload_listing}");
    let depends = field(&payload, "Depends");
    assert!(
        depends.contains(&format!("nodeapp-layer-{key} (= 1)")),
        "{depends}"
    );

    // A code-only release into another directory: npm does not run, the layer is the
    // same file.
    let manifest = write_nodeapp(&app, "1.1", "two", true, "");
    let second_out = temp.path().join("second");
    let (second, said) = build_node(&manifest, &second_out, &cache, "1700009999");
    assert!(said.contains("nothing is installed"), "{said}");
    assert!(!said.contains("Installing with"), "{said}");
    assert_eq!(
        file_of(&second, "layer").as_deref(),
        Some(layer_file.as_str())
    );
    assert_eq!(
        sha256_file(&layer),
        sha256_file(&second_out.join(&layer_file)),
        "the layer of a code-only release differs"
    );
    let second_payload = second_out.join(file_of(&second, "payload").expect("payload"));

    // Built again without the cache: npm runs, and the layer has the same bytes.
    let third_out = temp.path().join("third");
    let (third, said) = build_node(
        &manifest,
        &third_out,
        &temp.path().join("empty"),
        "1700019999",
    );
    assert!(said.contains("Installing with"), "{said}");
    assert_eq!(
        sha256_file(&layer),
        sha256_file(&third_out.join(file_of(&third, "layer").expect("layer"))),
        "the same key gave another layer"
    );
    assert_eq!(
        field(&second_payload, "Depends"),
        field(
            &third_out.join(file_of(&third, "payload").expect("payload")),
            "Depends"
        )
    );

    // Unpacked side by side, the release loads its dependencies through the link, with
    // require and with import.
    let root = temp.path().join("root");
    for deb in [&second_payload, &layer] {
        run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    }
    let release = root.join("opt/nodeapp/1.1");
    let output = run_ok(Command::new("node").arg("server.js").current_dir(&release));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "native hello 42 two\n"
    );
    let output = run_ok(
        Command::new("node")
            .args(["--input-type=module", "-e"])
            .arg("import dotty from 'dotty'; import addon from 'addon'; console.log(addon.hello(), dotty)")
            .current_dir(&release),
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "native hello 42\n");
    crate::support::assert_lintian_clean(&[&layer, &second_payload]);

    // Another dependency set: another key.
    let manifest = write_nodeapp(&app, "1.2", "three", false, "");
    let (fourth, _) = build_node(&manifest, &temp.path().join("fourth"), &cache, "1700029999");
    assert_ne!(file_of(&fourth, "layer").expect("layer"), layer_file);
}

/// `[files] exclude` reaches into `node_modules`: what it matches is not in the layer,
/// and the globs enter the layer's key (another exclude, another layer).
#[test]
fn a_node_layer_honours_files_exclude_and_keys_it() {
    if !crate::node::node_tools_present("a_node_layer_honours_files_exclude") {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("nodeapp");
    let cache = temp.path().join("cache");
    let listing = |extra: &str, out: &str| {
        let manifest = write_nodeapp(&app, "1.0", "one", true, extra);
        let out = temp.path().join(out);
        let (document, _) = build_node(&manifest, &out, &cache, "1700000000");
        let layer = file_of(&document, "layer").expect("a layer");
        (layer.clone(), contents(&out.join(layer)))
    };
    let (plain, plain_listing) = listing("", "plain");
    let (excluding, excluding_listing) = listing(
        "\n[files]\nexclude = [\"node_modules/dotty/data.js\"]\n",
        "excluding",
    );
    assert!(
        plain_listing.contains("/node_modules/dotty/data.js"),
        "{plain_listing}"
    );
    assert!(
        !excluding_listing.contains("/node_modules/dotty/data.js"),
        "{excluding_listing}"
    );
    assert!(
        excluding_listing.contains("/node_modules/dotty/index.js"),
        "{excluding_listing}"
    );
    assert_ne!(plain, excluding, "an exclude glob did not change the key");
}

#[test]
fn a_node_build_with_layers_disabled_keeps_node_modules() {
    if !crate::node::node_tools_present("a_node_build_with_layers_disabled") {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("nodeapp");
    let manifest = crate::node::node_application(&app, "1.0", "[layers]\nenabled = false\n");
    let out = temp.path().join("out");
    let (document, _) = build_node(&manifest, &out, &temp.path().join("cache"), "1700000000");
    assert_eq!(file_of(&document, "layer"), None);
    let payload = out.join(file_of(&document, "payload").expect("payload"));
    let listing = contents(&payload);
    assert!(
        listing.contains("./opt/nodeapp/1.0/node_modules/addon/build/Release/addon.node"),
        "{listing}"
    );
    assert!(!field(&payload, "Depends").contains("-layer-"));
}

/// A publish target receives a layer once: the code-only release that shares it uploads
/// its release and stage packages only, and the store holds one object per layer.
#[test]
fn a_publish_target_uploads_a_shared_layer_once() {
    let Some(s3) = crate::support::s3::S3::moto("layers on a publish target") else {
        return;
    };
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("tally");
    let out = temp.path().join("out");
    let mut manifests = Vec::new();
    for (version, epoch) in [("1.0", "1700000000"), ("1.1", "1700001000")] {
        write_tally(&app, version, "0.9.0", version, "");
        build_tally(&app.join("debstage.toml"), &out, epoch);
        manifests.push(out.join(format!("tally_{version}-1.build.json")));
    }
    let repo = crate::publish_targets::Repo::new(&s3, "apt/layers", "");
    let text = |path: &Path| path.to_str().expect("UTF-8 path").to_string();
    let pool_files = || -> std::collections::BTreeSet<String> {
        walkdir::WalkDir::new(repo.root.join("pool"))
            .into_iter()
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_type().is_file())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect()
    };
    repo.run(&["add", "--manifest", &text(&manifests[0])]);
    let first = repo.publish();
    let before = pool_files();
    assert!(
        before.iter().any(|name| name.contains("-layer-")),
        "{before:?}"
    );
    let count = |document: &serde_json::Value| document["uploaded"]["pool"].as_u64().unwrap_or(0);
    // The pool phase writes objects besides the pool's files (as many in each publish).
    let besides = count(&first)
        .checked_sub(before.len() as u64)
        .unwrap_or_else(|| panic!("fewer pool uploads than pool files: {first:#}"));
    // The code-only release adds its release and stage packages to the pool, and the
    // target receives those only.
    repo.run(&["add", "--manifest", &text(&manifests[1])]);
    let second = repo.publish();
    let new: Vec<String> = pool_files().difference(&before).cloned().collect();
    assert!(!new.iter().any(|name| name.contains("-layer-")), "{new:?}");
    assert!(
        count(&second) <= new.len() as u64 + besides,
        "the code-only release uploaded more than its new pool files {new:?}: {second:#}"
    );
    let layers: Vec<String> = crate::publish_targets::keys_under(&s3, "apt/layers/pool/")
        .into_iter()
        .filter(|key| key.contains("-layer-"))
        .collect();
    assert_eq!(layers.len(), 1, "{layers:?}");
    repo.verify_target();
}
