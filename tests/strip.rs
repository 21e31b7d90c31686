//! Stripping and debug symbols: a `command` build of a C program and library compiled
//! with `gcc -g` is stripped, its debug information lands in `<payload>-dbgsym` in
//! Debian's `.build-id` layout (checked with readelf, dpkg-deb and lintian), the same
//! input gives the same bytes, installer bookkeeping is left out, and the repository
//! carries the dbgsym package with its payload.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{build, debstage, files_in, run_ok, sha256_file, stderr, stdout};

/// A C program `bin/hello` that calls `lib/libgreet.so.1` (found through `$ORIGIN`), both
/// with debug information; `bin/noid`, linked without a build-id; `bin/bundled`, a copy
/// of hello with data appended (as pkg or deno compile make); and the bookkeeping files
/// `cargo install --root` leaves.
const BUILD_COMMAND: &str = r#"
set -e
mkdir -p "$DESTDIR/bin" "$DESTDIR/lib"
gcc -g -O1 -shared -fPIC -Wl,-soname,libgreet.so.1 -o "$DESTDIR/lib/libgreet.so.1" greet.c
gcc -g -O1 -o "$DESTDIR/bin/hello" hello.c -L"$DESTDIR/lib" -l:libgreet.so.1 -Wl,-rpath,'$ORIGIN/../lib'
gcc -g -O1 -Wl,--build-id=none -o "$DESTDIR/bin/noid" noid.c
cp "$DESTDIR/bin/hello" "$DESTDIR/bin/bundled"
printf 'appended payload' >> "$DESTDIR/bin/bundled"
printf '[v1]\n' > "$DESTDIR/.crates.toml"
printf '{}\n' > "$DESTDIR/.crates2.json"
"#;

/// Writes the C application and its manifest (with `extra` appended) into `directory`.
pub(crate) fn c_application(directory: &Path, version: &str, extra: &str) -> PathBuf {
    fs::create_dir_all(directory).expect("mkdir");
    fs::write(
        directory.join("greet.c"),
        "#include <stdio.h>\nvoid greet(const char *who) { printf(\"hello from %s\\n\", who); }\n",
    )
    .expect("write");
    fs::write(
        directory.join("hello.c"),
        "void greet(const char *);\nint main(void) { greet(\"c\"); return 0; }\n",
    )
    .expect("write");
    fs::write(directory.join("noid.c"), "int main(void) { return 0; }\n").expect("write");
    let manifest = directory.join("debstage.toml");
    fs::write(
        &manifest,
        format!(
            "[package]\nname = \"chello\"\nversion = \"{version}\"\n\
             maintainer = \"Test <test@example.com>\"\ndescription = \"C greeting\"\n\
             [environment]\nkind = \"command\"\ncommand = '''{BUILD_COMMAND}'''\n\
             [stages]\nnames = [\"test\", \"staging\"]\n{extra}"
        ),
    )
    .expect("write manifest");
    manifest
}

/// Writes a tiny Rust program (no dependencies, built offline) that `cargo install
/// --root "$DESTDIR"` installs, as `cargo install` users package their tools, and its
/// manifest. Its release profile keeps debug information.
pub(crate) fn rust_application(directory: &Path) -> PathBuf {
    let crate_dir = directory.join("rustapp");
    fs::create_dir_all(crate_dir.join("src")).expect("mkdir");
    fs::write(
        crate_dir.join("Cargo.toml"),
        "[package]\nname = \"rustapp\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [profile.release]\ndebug = true\n",
    )
    .expect("write");
    fs::write(
        crate_dir.join("src/main.rs"),
        "fn main() {\n    println!(\"hello from rust\");\n}\n",
    )
    .expect("write");
    let target = directory.join("cargo-target");
    let manifest = directory.join("debstage.toml");
    fs::write(
        &manifest,
        format!(
            "[package]\nname = \"rustapp\"\nversion = \"0.1.0\"\n\
             maintainer = \"Test <test@example.com>\"\ndescription = \"Rust greeting\"\n\
             [environment]\nkind = \"command\"\n\
             command = '''CARGO_TARGET_DIR={} cargo install --offline --quiet --path rustapp \
             --root \"$DESTDIR\"'''\n[stages]\nnames = [\"test\"]\n",
            target.display()
        ),
    )
    .expect("write manifest");
    manifest
}

fn readelf(arguments: &[&str], file: &Path) -> String {
    stdout(&run_ok(Command::new("readelf").args(arguments).arg(file)))
}

/// The GNU build-id of an ELF file, as `readelf -n` shows it.
pub(crate) fn build_id(file: &Path) -> String {
    readelf(&["-n"], file)
        .lines()
        .find_map(|line| line.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("{}: no build-id", file.display()))
        .to_string()
}

/// Whether an ELF file has a section of this name.
pub(crate) fn has_section(file: &Path, name: &str) -> bool {
    readelf(&["-S", "-W"], file)
        .split_whitespace()
        .any(|word| word == name)
}

fn field(deb: &Path, name: &str) -> String {
    stdout(&run_ok(
        Command::new("dpkg-deb").arg("-f").arg(deb).arg(name),
    ))
    .trim()
    .to_string()
}

fn extract(deb: &Path, into: &Path) {
    run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(into));
}

fn architecture() -> String {
    stdout(&run_ok(Command::new("dpkg").arg("--print-architecture")))
        .trim()
        .to_string()
}

#[test]
fn a_command_build_is_stripped_and_its_debug_symbols_go_to_dbgsym() {
    let temp = tempfile::tempdir().expect("temp dir");
    let manifest = c_application(&temp.path().join("app"), "1.0", "");
    let out = temp.path().join("out");
    let document = build(&manifest, &out, &[]);
    let arch = architecture();
    let payload = out.join(format!("chello-1.0_1.0-1_{arch}.deb"));
    let dbgsym = out.join(format!("chello-1.0-dbgsym_1.0-1_{arch}.deb"));
    let roles: Vec<(&str, &str)> = document["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            (
                package["package"].as_str().unwrap_or_default(),
                package["role"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        roles.contains(&("chello-1.0-dbgsym", "dbgsym")),
        "{roles:?}"
    );

    // The payload: stripped, each file naming its debug file, bookkeeping left out.
    let tree = temp.path().join("tree");
    extract(&payload, &tree);
    let release = tree.join("opt/chello/1.0");
    let hello = release.join("bin/hello");
    let library = release.join("lib/libgreet.so.1");
    for file in [&hello, &library, &release.join("bin/noid")] {
        assert!(!has_section(file, ".debug_info"), "{}", file.display());
        assert!(!has_section(file, ".symtab"), "{}", file.display());
    }
    assert!(has_section(&hello, ".gnu_debuglink"));
    assert!(!release.join(".crates.toml").exists());
    assert!(!release.join(".crates2.json").exists());
    // An executable with appended data is shipped as built.
    let bundled = fs::read(release.join("bin/bundled")).expect("bundled");
    assert!(bundled.ends_with(b"appended payload"));
    assert!(has_section(&release.join("bin/bundled"), ".debug_info"));
    // The stripped program still runs with its stripped library.
    let output = run_ok(&mut Command::new(&hello));
    assert_eq!(stdout(&output), "hello from c\n");

    // The dbgsym package: Debian's fields, one debug file per build-id.
    let ids = {
        let mut ids = vec![build_id(&hello), build_id(&library)];
        ids.sort();
        ids
    };
    assert_eq!(field(&dbgsym, "Package"), "chello-1.0-dbgsym");
    assert_eq!(field(&dbgsym, "Source"), "chello");
    assert_eq!(field(&dbgsym, "Version"), "1.0-1");
    assert_eq!(field(&dbgsym, "Architecture"), arch);
    assert_eq!(field(&dbgsym, "Section"), "debug");
    assert_eq!(field(&dbgsym, "Priority"), "optional");
    assert_eq!(field(&dbgsym, "Auto-Built-Package"), "debug-symbols");
    assert_eq!(field(&dbgsym, "Depends"), "chello-1.0 (= 1.0-1)");
    assert_eq!(
        field(&dbgsym, "Description"),
        "debug symbols for chello-1.0"
    );
    assert_eq!(field(&dbgsym, "Build-Ids"), ids.join(" "));
    let symbols = temp.path().join("symbols");
    extract(&dbgsym, &symbols);
    for id in &ids {
        let debug = symbols.join(format!(
            "usr/lib/debug/.build-id/{}/{}.debug",
            &id[..2],
            &id[2..]
        ));
        assert!(has_section(&debug, ".debug_info"), "{}", debug.display());
        assert_eq!(build_id(&debug), *id);
    }
    assert_eq!(
        fs::read_link(symbols.join("usr/share/doc/chello-1.0-dbgsym")).expect("doc link"),
        Path::new("chello-1.0")
    );

    // Lintian: nothing on either package (no unstripped-binary-or-object).
    crate::support::assert_lintian_clean(&[&payload, &dbgsym]);

    // The same input gives the same bytes, payload and debug symbols alike.
    let again = temp.path().join("again");
    build(&manifest, &again, &[]);
    for name in [&payload, &dbgsym] {
        let name = name.file_name().expect("name");
        assert_eq!(
            sha256_file(&out.join(name)),
            sha256_file(&again.join(name)),
            "{name:?}"
        );
    }
}

#[test]
fn a_cargo_install_build_is_stripped_without_its_bookkeeping() {
    let temp = tempfile::tempdir().expect("temp dir");
    let manifest = rust_application(temp.path());
    let out = temp.path().join("out");
    build(&manifest, &out, &[]);
    let arch = architecture();
    let tree = temp.path().join("tree");
    extract(
        &out.join(format!("rustapp-0.1.0_0.1.0-1_{arch}.deb")),
        &tree,
    );
    let release = tree.join("opt/rustapp/0.1.0");
    // cargo install wrote its bookkeeping beside bin/; the release does not ship it.
    assert!(!release.join(".crates.toml").exists());
    assert!(!release.join(".crates2.json").exists());
    let program = release.join("bin/rustapp");
    assert!(!has_section(&program, ".debug_info"));
    assert_eq!(
        stdout(&run_ok(&mut Command::new(&program))),
        "hello from rust\n"
    );
    let id = build_id(&program);
    let dbgsym = out.join(format!("rustapp-0.1.0-dbgsym_0.1.0-1_{arch}.deb"));
    assert_eq!(field(&dbgsym, "Build-Ids"), id);
    let symbols = temp.path().join("symbols");
    extract(&dbgsym, &symbols);
    let debug = symbols.join(format!(
        "usr/lib/debug/.build-id/{}/{}.debug",
        &id[..2],
        &id[2..]
    ));
    assert!(has_section(&debug, ".debug_info"), "{}", debug.display());
}

#[test]
fn the_manifest_turns_stripping_off_and_keeps_installer_files() {
    let temp = tempfile::tempdir().expect("temp dir");
    let manifest = c_application(
        &temp.path().join("app"),
        "1.0",
        "[build]\nstrip = false\n[files]\nkeep = [\"installer-files\"]\n",
    );
    let out = temp.path().join("out");
    build(&manifest, &out, &[]);
    assert!(
        !files_in(&out).iter().any(|name| name.contains("dbgsym")),
        "{:?}",
        files_in(&out)
    );
    let tree = temp.path().join("tree");
    extract(
        &out.join(format!("chello-1.0_1.0-1_{}.deb", architecture())),
        &tree,
    );
    let release = tree.join("opt/chello/1.0");
    assert!(has_section(&release.join("bin/hello"), ".debug_info"));
    assert!(release.join(".crates.toml").is_file());
    assert!(release.join(".crates2.json").is_file());

    // A group that does not exist is named with the ones that do.
    let bad = c_application(
        &temp.path().join("bad"),
        "1.0",
        "[files]\nkeep = [\"crates\"]\n",
    );
    let output = debstage()
        .args(["build", "--manifest"])
        .arg(&bad)
        .arg("--out")
        .arg(temp.path().join("bad-out"))
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("debstage.toml") && message.contains("installer-files"),
        "{message}"
    );
}

/// `repo add` takes the dbgsym package from the build manifest; promote and rollback list
/// it wherever its payload is; remove and gc take it away with its payload.
#[test]
fn the_repository_carries_debug_symbols_with_their_payload() {
    let temp = tempfile::tempdir().expect("temp dir");
    let repo = temp.path().join("repo");
    let run = |arguments: &[&str]| {
        stdout(&run_ok(
            debstage()
                .args(arguments)
                .env("DEBSTAGE_REPO", &repo)
                .env("SOURCE_DATE_EPOCH", "1700000000"),
        ))
    };
    run(&[
        "repo",
        "init",
        "--stages",
        "test,staging",
        "--arch",
        &architecture(),
        "--origin",
        "acme",
    ]);
    for version in ["1.0", "1.1"] {
        let manifest = c_application(&temp.path().join(format!("app-{version}")), version, "");
        let out = temp.path().join(format!("out-{version}"));
        build(&manifest, &out, &[]);
        let added = run(&[
            "--format",
            "json",
            "repo",
            "add",
            "--manifest",
            &out.join(format!("chello_{version}-1.build.json"))
                .display()
                .to_string(),
        ]);
        assert!(
            added.contains(&format!("chello-{version}-dbgsym")),
            "{added}"
        );
        run(&["repo", "promote", "chello", version]);
    }
    let listed = |suite: &str| {
        fs::read_to_string(repo.join(format!(
            "dists/{suite}/main/binary-{}/Packages",
            architecture()
        )))
        .expect("Packages")
        .lines()
        .filter_map(|line| line.strip_prefix("Package: "))
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    let staging = listed("staging");
    for package in ["chello-1.0-dbgsym", "chello-1.1-dbgsym", "chello-1.1"] {
        assert!(staging.iter().any(|name| name == package), "{staging:?}");
    }
    run(&["repo", "rollback", "chello", "staging"]);
    run(&["repo", "rollback", "chello", "test"]);
    assert!(listed("staging")
        .iter()
        .any(|name| name == "chello-1.0-dbgsym"));
    let list: serde_json::Value =
        serde_json::from_str(&run(&["--format", "json", "repo", "list"])).expect("json");
    crate::support::schema::assert_valid("repo-list", &list);
    assert!(
        list["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .any(|package| package["role"] == "dbgsym"),
        "{list}"
    );
    run(&["repo", "remove", "chello", "1.1"]);
    for suite in ["test", "staging"] {
        let packages = listed(suite);
        assert!(
            !packages.iter().any(|name| name.starts_with("chello-1.1")),
            "{suite}: {packages:?}"
        );
    }
    assert!(listed("staging")
        .iter()
        .any(|name| name == "chello-1.0-dbgsym"));

    // gc: 1.2 in test; 1.0 (still staging's) leaves test's suite with its symbols.
    let manifest = c_application(&temp.path().join("app-1.2"), "1.2", "");
    let out = temp.path().join("out-1.2");
    build(&manifest, &out, &[]);
    run(&[
        "repo",
        "add",
        "--manifest",
        &out.join("chello_1.2-1.build.json").display().to_string(),
    ]);
    run(&["repo", "gc", "--keep", "1"]);
    let test = listed("test");
    assert!(
        test.iter().any(|name| name == "chello-1.2-dbgsym")
            && !test.iter().any(|name| name.starts_with("chello-1.0")),
        "{test:?}"
    );
    assert!(listed("staging")
        .iter()
        .any(|name| name == "chello-1.0-dbgsym"));
}
