//! `debstage build --target <codename>`: the Python example built from this (bookworm)
//! machine for bookworm and for trixie in debootstrap roots of each, installed with dpkg
//! into a root of its own distribution, and refused by the other's, then promoted,
//! rolled back and collected per distribution (`--dist`) with its layers in a repository;
//! bad targets and packages refused with the manifest's file and key.
//!
//! The build roots are cached by debstage itself under `XDG_CACHE_HOME`, which these tests
//! point into cargo's scratch directory (`target/tmp/debstage-cache`), so later runs find
//! them warm. A cold root costs about 100 s (debootstrap of minbase, then python3-venv and
//! python3-pip) on a busy 2-core machine.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::e2e::harness::can_run;
use crate::support::{debstage, example, run_fail, run_ok, stderr, stdout};

/// The cache directory the tests give debstage (`XDG_CACHE_HOME`).
pub(crate) fn cache_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("debstage-cache")
}

/// A cache directory whose roots never get `[build] packages`: for the tests of a build
/// tool missing from the root (the roots of [`cache_home`] get make and a compiler as
/// soon as one test asks for them).
pub(crate) fn bare_cache_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("debstage-cache-bare")
}

/// The build root debstage made for `codename`.
pub(crate) fn build_root(codename: &str) -> PathBuf {
    let output = run_ok(Command::new("dpkg").arg("--print-architecture"));
    let architecture = stdout(&output).trim().to_string();
    cache_home()
        .join("debstage/roots")
        .join(format!("{codename}-{architecture}"))
}

/// Whether this process can build in a root (root, debootstrap, unshare, chroot); fails
/// the test under CI when it cannot.
fn can_build_in_roots() -> bool {
    can_run(
        "build --target",
        &[("unshare", "util-linux"), ("chroot", "coreutils")],
    )
}

/// Appends `extra` (TOML) to the manifest at `manifest`.
fn append_to_manifest(manifest: &Path, extra: &str) {
    let text = fs::read_to_string(manifest).expect("manifest");
    fs::write(manifest, format!("{text}{extra}")).expect("write");
}

fn target_build(manifest: &Path, out: &Path, target: &str) -> Command {
    let mut command = debstage();
    command
        .args(["--format", "json", "build", "--manifest"])
        .arg(manifest)
        .arg("--out")
        .arg(out)
        .args(["--target", target])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("XDG_CACHE_HOME", cache_home());
    command
}

/// A throwaway copy of a root, removed when dropped.
struct RootCopy {
    _temp: tempfile::TempDir,
    path: PathBuf,
}

impl RootCopy {
    fn of(root: &Path) -> RootCopy {
        let temp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let path = temp.path().join("root");
        run_ok(Command::new("cp").arg("-a").arg(root).arg(&path));
        RootCopy { _temp: temp, path }
    }

    /// Runs a program in the copy with chroot.
    fn run(&self, program: &str, arguments: &[&str]) -> Output {
        Command::new("chroot")
            .arg(&self.path)
            .arg(program)
            .args(arguments)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("chroot runs")
    }

    /// Copies packages into the root's /tmp and runs one `dpkg -i` on them there.
    fn dpkg_install(&self, debs: &[&Path]) -> Output {
        let mut arguments = vec!["-i".to_string()];
        for deb in debs {
            let name = deb.file_name().expect("file name").to_string_lossy();
            fs::copy(deb, self.path.join("tmp").join(name.as_ref())).expect("copy the package");
            arguments.push(format!("/tmp/{name}"));
        }
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        self.run("dpkg", &arguments)
    }
}

/// The file in `out` of the package with `role` (payload, layer) that a build's JSON names.
fn built(document: &serde_json::Value, out: &Path, role: &str) -> PathBuf {
    let packages = document["packages"].as_array().expect("packages");
    let file = packages
        .iter()
        .find(|package| package["role"] == role)
        .and_then(|package| package["file"].as_str())
        .unwrap_or_else(|| panic!("a {role}"));
    out.join(file)
}

fn field(deb: &Path, name: &str) -> String {
    stdout(&run_ok(
        Command::new("dpkg-deb").arg("--field").arg(deb).arg(name),
    ))
    .trim()
    .to_string()
}

#[test]
fn the_python_example_builds_for_bookworm_and_trixie_and_installs_on_its_own_only() {
    if !can_build_in_roots() {
        return;
    }
    let (temp, app) = example("pyapp");
    let manifest = app.join("debstage.toml");
    append_to_manifest(
        &manifest,
        "\n[build]\ntargets = [\"bookworm\", \"trixie\"]\n",
    );
    // One command builds both, into one directory: the versions keep them apart.
    let out = temp.path().join("out");
    let output = run_ok(&mut target_build(&manifest, &out, "all"));
    let document: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("build prints JSON");
    crate::support::schema::assert_valid("build-targets", &document);
    let builds = document["builds"].as_array().expect("builds");
    assert_eq!(builds.len(), 2);
    let mut payloads = Vec::new();
    for (build, (codename, suffix, python)) in builds
        .iter()
        .zip([("bookworm", "+deb12", "3.11"), ("trixie", "+deb13", "3.13")])
    {
        let mut single = build.clone();
        single["schema_version"] = 1.into();
        crate::support::schema::assert_valid("build", &single);
        assert_eq!(build["target"], codename);
        let version = format!("1.2.0-1{suffix}");
        assert_eq!(build["debian_version"], version.as_str());
        let deb = built(build, &out, "payload");
        assert_eq!(field(&deb, "Version"), version);
        // The interpreter guard names the distribution's own Python.
        let depends = field(&deb, "Depends");
        let relations: Vec<&str> = depends.split(", ").collect();
        assert!(
            relations.contains(&format!("python{python}").as_str())
                && relations.contains(&format!("python3 (>= {python}~)").as_str()),
            "{codename}: {depends}"
        );
        // The build manifest file records the target too.
        let written: serde_json::Value = serde_json::from_slice(
            &fs::read(out.join(format!("pyapp_{version}.build.json"))).expect("build manifest"),
        )
        .expect("JSON");
        assert_eq!(written["target"], codename);
        // The layer of the dependencies is built for the distribution too (its version
        // carries the suffix), and installs with the payload.
        let layer = built(build, &out, "layer");
        assert_eq!(field(&layer, "Version"), format!("1{suffix}"));
        payloads.push((codename, python, deb, layer));
    }
    // Per distribution: payload, layer, three stage packages, the build manifest.
    assert_eq!(crate::support::files_in(&out).len(), 12);

    // Each payload installs with dpkg into a root of its distribution (its Depends are
    // there) and the application answers; the other distribution's root refuses it.
    for (codename, python, deb, layer) in &payloads {
        let own = RootCopy::of(&build_root(codename));
        let installed = own.dpkg_install(&[layer, deb]);
        assert!(
            installed.status.success(),
            "{codename}: {}{}",
            stdout(&installed),
            stderr(&installed)
        );
        let answer = own.run("/opt/pyapp/1.2.0/bin/pyapp", &["--check"]);
        assert!(
            stdout(&answer).starts_with("pyapp 1.2.0: badge of "),
            "{codename}: {}{}",
            stdout(&answer),
            stderr(&answer)
        );
        let version = own.run(
            "/opt/pyapp/1.2.0/bin/python",
            &["-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        );
        assert_eq!(stdout(&version).trim(), *python);

        let other = if *codename == "bookworm" {
            "trixie"
        } else {
            "bookworm"
        };
        let foreign = RootCopy::of(&build_root(other));
        let refused = foreign.dpkg_install(&[layer, deb]);
        assert!(!refused.status.success(), "{codename} payload on {other}");
        assert!(
            stderr(&refused).contains(&format!("depends on python{python}")),
            "{}",
            stderr(&refused)
        );
    }

    // In a repository, `--dist` moves one distribution's release with its layer, and
    // only that distribution's.
    let repo = temp.path().join("repo");
    let architecture = stdout(&run_ok(Command::new("dpkg").arg("--print-architecture")));
    crate::layers::repo_ok(&repo, &["init", "--arch", architecture.trim()]);
    let add = |version: &str| {
        let manifest = out.join(format!("pyapp_{version}.build.json"));
        crate::layers::repo_ok(
            &repo,
            &["add", "--manifest", manifest.to_str().expect("UTF-8 path")],
        );
    };
    let promote = |release: &str, codename: &str| {
        crate::layers::repo_ok(
            &repo,
            &[
                "promote", "pyapp", release, "--to", "staging", "--dist", codename,
            ],
        );
    };
    add("1.2.0-1+deb12");
    add("1.2.0-1+deb13");
    let listed = |suite: &str| {
        if repo.join("dists").join(suite).exists() {
            crate::layers::published(&repo, suite)
        } else {
            Vec::new()
        }
    };
    let package = |deb: &Path| (field(deb, "Package"), field(deb, "Version"));
    let stage_package = |version: &str| ("pyapp-staging".to_string(), version.to_string());
    let (_, _, bookworm_payload, bookworm_layer) = &payloads[0];
    let (_, _, trixie_payload, trixie_layer) = &payloads[1];
    let sorted = |mut pairs: Vec<(String, String)>| {
        pairs.sort();
        pairs
    };
    // What bookworm-staging lists at 1.2.0 alone: the release, its layer, the stage package.
    let bookworm_staging_alone = sorted(vec![
        package(bookworm_payload),
        package(bookworm_layer),
        stage_package("1.2.0-1+deb12"),
    ]);
    promote("1.2.0", "bookworm");
    assert_eq!(listed("bookworm-staging"), bookworm_staging_alone);
    assert_eq!(listed("trixie-staging"), Vec::new());
    promote("1.2.0", "trixie");
    let trixie_staging = sorted(vec![
        package(trixie_payload),
        package(trixie_layer),
        stage_package("1.2.0-1+deb13"),
    ]);
    assert_eq!(listed("trixie-staging"), trixie_staging);
    crate::layers::repo_ok(&repo, &["verify"]);

    // 1.3.0 for bookworm alone, with one more dependency: another layer. Promoted, then
    // rolled back with `--dist`, bookworm's staging goes back to 1.2.0 and its layer;
    // trixie's is never touched.
    for file in ["debstage.toml", "pyproject.toml"] {
        let path = app.join(file);
        let text = fs::read_to_string(&path).expect("read");
        let changed = text.replacen("version = \"1.2.0\"", "version = \"1.3.0\"", 1);
        assert_ne!(text, changed, "{file} names version 1.2.0");
        fs::write(&path, changed).expect("write");
    }
    fs::write(
        app.join("requirements.txt"),
        "Pillow==11.0.0\nsix==1.17.0\n",
    )
    .expect("write");
    let output = run_ok(&mut target_build(&manifest, &out, "bookworm"));
    let document: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("build prints JSON");
    let newer_payload = built(&document, &out, "payload");
    let newer_layer = built(&document, &out, "layer");
    assert_ne!(package(&newer_layer), package(bookworm_layer));
    add("1.3.0-1+deb12");
    promote("1.3.0", "bookworm");
    // The older release stays listed with its layer, so a rollback is installable.
    assert_eq!(
        listed("bookworm-staging"),
        sorted(vec![
            package(bookworm_payload),
            package(bookworm_layer),
            package(&newer_payload),
            package(&newer_layer),
            stage_package("1.3.0-1+deb12"),
        ])
    );
    assert_eq!(listed("trixie-staging"), trixie_staging);
    crate::layers::repo_ok(
        &repo,
        &["rollback", "pyapp", "staging", "--dist", "bookworm"],
    );
    let bookworm_staging = listed("bookworm-staging");
    assert!(
        bookworm_staging.contains(&stage_package("1.2.0-1+deb12"))
            && !bookworm_staging.contains(&stage_package("1.3.0-1+deb12"))
            && bookworm_staging.contains(&package(bookworm_payload))
            && bookworm_staging.contains(&package(bookworm_layer)),
        "{bookworm_staging:?}"
    );
    assert_eq!(listed("trixie-staging"), trixie_staging);
    crate::layers::repo_ok(&repo, &["verify"]);

    // A layer's version (`1+deb12`) is not a release of the application: naming it moves
    // nothing.
    let refused = run_fail(
        debstage()
            .args(["repo", "--repo"])
            .arg(&repo)
            .args([
                "promote", "pyapp", "1", "--to", "staging", "--dist", "bookworm",
            ])
            .env("USER", "tester"),
    );
    assert!(
        stderr(&refused).contains("pyapp 1: no such version for bookworm"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(listed("bookworm-staging"), bookworm_staging);

    // `gc --keep 0` keeps only what the stages point to: bookworm-staging (at 1.2.0)
    // drops 1.3.0 and its layer, bookworm-test (at 1.3.0) drops 1.2.0 and its layer, and
    // the pool keeps all three layers, each needed by a kept release.
    crate::layers::repo_ok(&repo, &["gc", "--keep", "0"]);
    assert_eq!(listed("bookworm-staging"), bookworm_staging_alone);
    let bookworm_test = listed("bookworm-test");
    assert!(
        bookworm_test.contains(&package(&newer_payload))
            && bookworm_test.contains(&package(&newer_layer))
            && !bookworm_test.contains(&package(bookworm_layer)),
        "{bookworm_test:?}"
    );
    assert_eq!(listed("trixie-staging"), trixie_staging);
    let pool = crate::support::files_in(&repo.join("pool/main/p/pyapp"));
    for layer in [bookworm_layer, trixie_layer, &newer_layer] {
        let name = layer.file_name().expect("file name").to_string_lossy();
        assert!(pool.iter().any(|file| *file == name), "{name}: {pool:?}");
    }
    crate::layers::repo_ok(&repo, &["verify"]);
}

#[test]
fn an_unknown_target_is_refused_naming_where_it_came_from() {
    let (temp, app) = example("pyapp");
    let manifest = app.join("debstage.toml");
    let output = run_fail(&mut target_build(
        &manifest,
        &temp.path().join("out"),
        "buster",
    ));
    assert_eq!(output.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).expect("JSON error");
    assert_eq!(error["error"]["key"], "--target");
    assert!(
        error["error"]["message"].as_str().is_some_and(|message| {
            message.contains(
            "\"buster\" is not a distribution debstage knows; known: bullseye, bookworm, trixie"
        )
        }),
        "{error}"
    );

    append_to_manifest(&manifest, "\n[build]\ntargets = [\"bookworm\", \"sid\"]\n");
    let output = run_fail(&mut target_build(
        &manifest,
        &temp.path().join("out"),
        "all",
    ));
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).expect("JSON error");
    assert_eq!(error["error"]["key"], "[build] targets[1]");
    assert_eq!(
        error["error"]["file"],
        manifest.display().to_string().as_str()
    );
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("\"sid\" is not a distribution")),
        "{error}"
    );
    assert!(!temp.path().join("out").exists());
}

/// A name the archive lacks is refused, and so is a name apt would read as a pattern
/// (`zlib1g.+` is a valid package name, and apt-get would install 17 packages for it).
#[test]
fn a_build_package_the_distribution_lacks_is_refused_naming_the_key() {
    if !can_build_in_roots() {
        return;
    }
    for (packages, key, name) in [
        (
            "\"libpq-dev\", \"debstage-no-such-package\"",
            "[build] packages[1]",
            "debstage-no-such-package",
        ),
        ("\"zlib1g.+\"", "[build] packages[0]", "zlib1g.+"),
    ] {
        let (temp, app) = example("pyapp");
        let manifest = app.join("debstage.toml");
        append_to_manifest(&manifest, &format!("\n[build]\npackages = [{packages}]\n"));
        let out = temp.path().join("out");
        let output = run_fail(&mut target_build(&manifest, &out, "bookworm"));
        // apt's progress comes first on stderr; the error object is the last line.
        let text = stderr(&output);
        let last = text.lines().last().unwrap_or_default();
        let error: serde_json::Value = serde_json::from_str(last).expect("JSON error");
        assert_eq!(error["error"]["key"], key, "{error}");
        assert_eq!(
            error["error"]["file"],
            manifest.display().to_string().as_str()
        );
        assert!(
            error["error"]["message"].as_str().is_some_and(
                |message| message.contains(&format!("\"{name}\" is not a package of bookworm"))
            ),
            "{error}"
        );
        assert!(!out.exists());
    }
}

/// A `command` environment runs in the trixie root: it copies trixie's python3.13 (which
/// this bookworm host does not have), cannot write into the application directory, and
/// the binary's Depends come from trixie's dpkg database (glibc 2.38 and expat 2.6 are
/// newer than bookworm's 2.36 and 2.5).
#[test]
fn a_build_command_runs_in_the_root_and_its_depends_come_from_there() {
    if !can_build_in_roots() {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("app");
    fs::create_dir(&app).expect("mkdir");
    fs::write(
        app.join("debstage.toml"),
        r#"[package]
name = "pycopy"
version = "1.0"
maintainer = "Release Engineering <release@example.com>"
description = "The distribution's python3.13 binary, copied by a build command"

[environment]
kind = "command"
command = """
mkdir -p "$DESTDIR/bin" && cp /usr/bin/python3.13 "$DESTDIR/bin/"
if touch /debstage/app/written; then exit 1; fi
"""

[build]
packages = ["python3.13-minimal"]
"#,
    )
    .expect("write");
    let out = temp.path().join("out");
    run_ok(&mut target_build(
        &app.join("debstage.toml"),
        &out,
        "trixie",
    ));
    assert!(!app.join("written").exists());
    let deb = out.join("pycopy-1.0_1.0-1+deb13_amd64.deb");
    assert_eq!(
        field(&deb, "Depends"),
        "libc6 (>= 2.38), libexpat1 (>= 2.6.0), zlib1g (>= 1:1.2.0)"
    );
}

/// An interpreter the target's root does not have is refused naming the key, with the way
/// to add it (bookworm has no python3.13; the host build would look on the host).
#[test]
fn an_interpreter_missing_from_the_root_is_refused_naming_the_key() {
    if !can_build_in_roots() {
        return;
    }
    let (temp, app) = example("pyapp");
    let manifest = app.join("debstage.toml");
    let text = fs::read_to_string(&manifest).expect("manifest");
    fs::write(
        &manifest,
        text.replace("\"/usr/bin/python3\"", "\"/usr/bin/python3.13\""),
    )
    .expect("write");
    let output = run_fail(&mut target_build(
        &manifest,
        &temp.path().join("out"),
        "bookworm",
    ));
    let text = stderr(&output);
    let error: serde_json::Value =
        serde_json::from_str(text.lines().last().unwrap_or_default()).expect("JSON error");
    assert_eq!(
        error["error"]["key"], "[environment] interpreter",
        "{error}"
    );
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|message| message
                .contains("\"/usr/bin/python3.13\" is not installed in the build root")
                && message.contains("add \"python3.13\" to [build] packages")),
        "{error}"
    );
}

/// Two builds at once: while one runs its build command in the trixie root (holding the
/// root shared), another that needs a package the root lacks waits for it, then installs
/// the package; both succeed and the root records the package.
#[test]
fn a_build_that_adds_a_package_waits_for_one_that_uses_the_root() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    if !can_build_in_roots() {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let manifest_of = |name: &str, command: &str, build: &str| {
        let app = temp.path().join(name);
        fs::create_dir(&app).expect("mkdir");
        fs::write(
            app.join("debstage.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"1.0\"\n\
                 maintainer = \"Release Engineering <release@example.com>\"\n\
                 description = \"A build that takes its time\"\n\n\
                 [environment]\nkind = \"command\"\ncommand = '{command}'\n{build}"
            ),
        )
        .expect("write");
        app.join("debstage.toml")
    };
    let slow = manifest_of(
        "slow",
        r#"sleep 5; mkdir -p "$DESTDIR/bin"; echo run > "$DESTDIR/bin/file""#,
        "",
    );
    let adding = manifest_of(
        "adding",
        r#"mkdir -p "$DESTDIR/bin"; cp /usr/bin/hello "$DESTDIR/bin/""#,
        "\n[build]\npackages = [\"hello\"]\n",
    );
    // The shared trixie root, made now if no other test has made it yet (under its lock).
    let warm = temp.path().join("warm");
    fs::create_dir(&warm).expect("mkdir");
    fs::write(warm.join("file"), "warm\n").expect("write");
    fs::write(
        warm.join("debstage.toml"),
        "[package]\nname = \"warm\"\nversion = \"1.0\"\n\
         maintainer = \"Release Engineering <release@example.com>\"\n\
         description = \"Makes the root\"\n\n[environment]\nkind = \"dir\"\nsource = \".\"\n",
    )
    .expect("write");
    run_ok(&mut target_build(
        &warm.join("debstage.toml"),
        &temp.path().join("warm-out"),
        "trixie",
    ));
    // A cache of its own, with a copy of the warm trixie root that lacks `hello` (the
    // shared root may have it from an earlier run).
    let cache = temp.path().join("cache");
    let roots = cache.join("debstage/roots");
    fs::create_dir_all(&roots).expect("mkdir");
    let root_name = build_root("trixie").file_name().expect("name").to_owned();
    let root = roots.join(&root_name);
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(build_root("trixie"))
            .arg(&root),
    );
    let _ = Command::new("chroot")
        .arg(&root)
        .args(["dpkg", "--purge", "hello"])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output();
    let record_path = root.join("var/lib/debstage/build-root.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&fs::read(&record_path).expect("record")).expect("JSON");
    let packages = record["packages"].as_array_mut().expect("packages");
    packages.retain(|package| package != "hello");
    fs::write(&record_path, record.to_string()).expect("write the record");
    // In text: the progress lines this test waits for are not printed with --format json.
    let build = |manifest: &Path, out: &str| {
        let mut command = debstage();
        command
            .args(["build", "--manifest"])
            .arg(manifest)
            .arg("--out")
            .arg(temp.path().join(out))
            .args(["--target", "trixie"])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("XDG_CACHE_HOME", &cache);
        command
    };
    let mut first = build(&slow, "slow-out")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the first build");
    let mut lines = BufReader::new(first.stderr.take().expect("stderr")).lines();
    for line in lines.by_ref() {
        if line.expect("line").starts_with("Running the build command") {
            break;
        }
    }
    let second = run_ok(&mut build(&adding, "adding-out"));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(first.wait().expect("wait").success(), "{rest:?}");
    assert!(
        stderr(&second).contains("Waiting for another build that holds the build root"),
        "{}",
        stderr(&second)
    );
    let record = fs::read_to_string(&record_path).expect("record");
    assert!(record.contains("\"hello\""), "{record}");
}

/// Each `--target` build runs on a throwaway layer over the cached root, in namespaces of
/// its own: a file one build's command writes into the root's `/etc` is not there for the
/// next build (nor in the cached root), the command sees only its own processes (not
/// this test's), a hostname of its own and a minimal `/dev`, and no layer is left behind.
#[test]
fn a_target_build_forgets_what_it_wrote_into_the_root_and_sees_only_itself() {
    if !can_build_in_roots() {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("app");
    fs::create_dir(&app).expect("mkdir");
    let test_pid = std::process::id();
    fs::write(
        app.join("debstage.toml"),
        format!(
            r#"[package]
name = "forgetful"
version = "1.0"
maintainer = "Release Engineering <release@example.com>"
description = "A build command that writes into its root"

[environment]
kind = "command"
command = """
if [ -e /etc/leftover ]; then echo "FOUND /etc/leftover: $(cat /etc/leftover)" >&2; exit 1; fi
echo "written by a build" > /etc/leftover
if [ -e /proc/{test_pid} ]; then echo "SEES the test's process {test_pid}" >&2; exit 1; fi
pids=$(ls /proc | grep -c '^[0-9]')
if [ "$pids" -gt 5 ]; then echo "SEES $pids processes: $(ls /proc | grep '^[0-9]' | tr '\n' ' ')" >&2; exit 1; fi
if [ "$(cat /proc/sys/kernel/hostname)" != debstage-build ]; then echo "HOSTNAME $(cat /proc/sys/kernel/hostname)" >&2; exit 1; fi
for device in null zero full random urandom tty; do
  if [ ! -c /dev/$device ]; then echo "NO /dev/$device" >&2; exit 1; fi
done
if [ -e /dev/vda ] || [ -e /dev/kmsg ] || [ -e /dev/loop0 ]; then echo "HOST DEVICES: $(ls /dev | tr '\n' ' ')" >&2; exit 1; fi
echo data > /dev/shm/probe
head -c 4 /dev/urandom > /dev/null
mkdir -p "$DESTDIR/share"
echo forgetful > "$DESTDIR/share/name"
"""
"#
        ),
    )
    .expect("write");
    for build in ["first", "second"] {
        let output = target_build(
            &app.join("debstage.toml"),
            &temp.path().join(build),
            "bookworm",
        )
        .output()
        .expect("run debstage");
        assert!(
            output.status.success(),
            "{build} build: {}",
            stderr(&output)
        );
    }
    let root = build_root("bookworm");
    assert!(!root.join("etc/leftover").exists(), "in the cached root");
    // Other tests' builds may hold layers of their own right now: only a layer of a
    // process that has ended (these two builds) would be one left behind.
    let layers = root.with_file_name(format!(
        "{}.layers",
        root.file_name().expect("name").to_string_lossy()
    ));
    for entry in fs::read_dir(&layers)
        .expect("the layers' directory")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().unwrap_or_default();
        assert!(
            Path::new("/proc").join(pid).exists(),
            "{name}: a layer left behind"
        );
    }
}
