//! `debstage build` on real inputs, checked with dpkg-deb, lintian, sh and shellcheck.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::support::*;

fn deb_field(deb: &Path, field: &str) -> String {
    let output = run_ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(field));
    stdout(&output).trim().to_string()
}

fn contents(deb: &Path) -> Vec<String> {
    let output = run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb));
    stdout(&output)
        .lines()
        .map(|line| {
            // mode owner size date time path [-> target]
            let parts: Vec<&str> = line.split_whitespace().collect();
            format!("{} {} {}", parts[0], parts[1], parts[5..].join(" "))
        })
        .collect()
}

#[test]
fn builds_payload_and_stage_packages_that_dpkg_reads() {
    let (temp, app) = example("hello");
    let out = temp.path().join("out");
    let manifest = build(&app.join("debstage.toml"), &out, &[]);
    assert_eq!(
        files_in(&out),
        [
            "hello-1.0_1.0-1_all.deb",
            "hello-production_1.0-1_all.deb",
            "hello-staging_1.0-1_all.deb",
            "hello-test_1.0-1_all.deb",
            "hello_1.0-1.build.json"
        ]
    );
    // The build manifest names every package with its real size and hash.
    let packages = manifest["packages"].as_array().expect("packages");
    assert_eq!(packages.len(), 4);
    for package in packages {
        let file = out.join(package["file"].as_str().expect("file"));
        assert_eq!(
            package["sha256"].as_str(),
            Some(sha256_file(&file).as_str()),
            "{}",
            file.display()
        );
        assert_eq!(
            package["size"].as_u64(),
            Some(fs::metadata(&file).expect("stat").len())
        );
        assert_eq!(
            deb_field(&file, "Package"),
            package["package"].as_str().expect("package")
        );
    }

    let payload = out.join("hello-1.0_1.0-1_all.deb");
    assert_eq!(deb_field(&payload, "Version"), "1.0-1");
    assert_eq!(deb_field(&payload, "Source"), "hello");
    let listing = contents(&payload);
    assert_eq!(listing[0], "drwxr-xr-x root/root ./");
    assert!(
        listing.contains(&"-rwxr-xr-x root/root ./opt/hello/1.0/bin/hello".to_string()),
        "{listing:#?}"
    );
    assert!(
        listing.contains(&"-rw-r--r-- root/root ./opt/hello/1.0/etc/production.env".to_string())
    );
    assert!(listing.contains(&"drwxr-xr-x root/root ./opt/hello/1.0/hooks/".to_string()));
    // No stage link is ever shipped: the maintainer scripts make it.
    assert!(!listing
        .iter()
        .any(|line| line.contains("/opt/hello/production")));

    let stage = out.join("hello-production_1.0-1_all.deb");
    assert_eq!(deb_field(&stage, "Depends"), "hello-1.0 (= 1.0-1)");
    assert_eq!(deb_field(&stage, "Architecture"), "all");
    let listing = contents(&stage);
    assert!(listing
        .contains(&"-rw-r--r-- root/root ./etc/apt/preferences.d/hello-production".to_string()));
    assert!(listing.contains(
        &"-rw-r--r-- root/root ./lib/systemd/system/hello-production.service".to_string()
    ));

    // dpkg-deb -x and -e unpack everything; the control member has what dpkg needs.
    let unpacked = temp.path().join("x");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&stage)
            .arg(&unpacked),
    );
    let pin =
        fs::read_to_string(unpacked.join("etc/apt/preferences.d/hello-production")).expect("pin");
    assert!(
        pin.contains("Package: hello-production\nPin: release n=production\nPin-Priority: 1001\n"),
        "{pin}"
    );
    let unit = fs::read_to_string(unpacked.join("lib/systemd/system/hello-production.service"))
        .expect("unit");
    assert!(
        unit.contains("ExecStart=/opt/hello/production/bin/hello --greeting Hello\n"),
        "{unit}"
    );
    assert!(unit.contains("EnvironmentFile=-/etc/hello/production.env\n"));
    // A program that cannot be executed fails the restart itself (Type=simple would not).
    assert!(unit.contains("\nType=exec\n"), "{unit}");
    let control = temp.path().join("control");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&stage).arg(&control));
    assert_eq!(
        fs::read_to_string(control.join("conffiles")).expect("conffiles"),
        "/etc/apt/preferences.d/hello-production\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let mode = fs::metadata(control.join(script))
            .expect("script")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{script}");
    }
    // md5sums lists every regular file with its real digest.
    let md5sums = fs::read_to_string(control.join("md5sums")).expect("md5sums");
    run_ok(
        Command::new("md5sum")
            .arg("--check")
            .arg("--quiet")
            .arg(control.join("md5sums"))
            .current_dir(&unpacked),
    );
    assert!(md5sums.contains("  etc/apt/preferences.d/hello-production\n"));
}

#[test]
fn lintian_reports_nothing_beyond_the_shipped_overrides() {
    let (temp, app) = example("hello");
    let out = temp.path().join("out");
    build(&app.join("debstage.toml"), &out, &[]);
    let debs: Vec<_> = files_in(&out)
        .into_iter()
        .filter(|name| name.ends_with(".deb"))
        .map(|name| out.join(name))
        .collect();
    let debs: Vec<&Path> = debs.iter().map(std::path::PathBuf::as_path).collect();
    crate::support::assert_lintian_clean(&debs);
    // And the overrides are really used (lintian raises those tags without them).
    let output = crate::support::lintian(&["--show-overrides"], &debs[..1]);
    assert!(
        stdout(&output).contains("O: hello-1.0: dir-or-file-in-opt"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn maintainer_scripts_pass_sh_n_and_shellcheck() {
    let (temp, app) = example("hello");
    let out = temp.path().join("out");
    build(&app.join("debstage.toml"), &out, &[]);
    let mut scripts = Vec::new();
    for name in files_in(&out)
        .into_iter()
        .filter(|name| name.ends_with(".deb"))
    {
        let control = temp.path().join(format!("control-{name}"));
        run_ok(
            Command::new("dpkg-deb")
                .arg("-e")
                .arg(out.join(&name))
                .arg(&control),
        );
        for script in ["preinst", "postinst", "prerm", "postrm"] {
            if control.join(script).exists() {
                scripts.push(control.join(script));
            }
        }
    }
    assert!(
        scripts.len() >= 10,
        "payload postrm + 3 scripts per stage: {scripts:?}"
    );
    for script in &scripts {
        run_ok(Command::new("sh").arg("-n").arg(script));
        assert!(fs::read_to_string(script)
            .expect("script")
            .starts_with("#!/bin/sh\n"));
    }
    run_ok(
        Command::new("shellcheck")
            .args(["--shell=sh", "--severity=style"])
            .args(&scripts),
    );
}

#[test]
fn same_input_and_source_date_epoch_give_identical_bytes() {
    let (temp, app) = example("hello");
    let first = temp.path().join("first");
    let second = temp.path().join("second");
    build(&app.join("debstage.toml"), &first, &[]);
    // Touching the inputs after SOURCE_DATE_EPOCH changes nothing: mtimes are clamped.
    run_ok(Command::new("touch").arg(app.join("app/bin/hello")));
    build(&app.join("debstage.toml"), &second, &[]);
    for name in files_in(&first) {
        assert_eq!(
            fs::read(first.join(&name)).expect("first"),
            fs::read(second.join(&name)).expect("second"),
            "{name} differs"
        );
    }
    // Without SOURCE_DATE_EPOCH the newest input sets the time: still reproducible.
    let third = temp.path().join("third");
    let fourth = temp.path().join("fourth");
    for out in [&third, &fourth] {
        run_ok(
            debstage()
                .arg("--quiet")
                .arg("build")
                .arg("--manifest")
                .arg(app.join("debstage.toml"))
                .arg("--out")
                .arg(out)
                .env_remove("SOURCE_DATE_EPOCH"),
        );
    }
    for name in files_in(&third) {
        assert_eq!(
            fs::read(third.join(&name)).expect("third"),
            fs::read(fourth.join(&name)).expect("fourth"),
            "{name} differs"
        );
    }
}

/// A tree with what real applications hold: long paths, symlinks (relative, absolute,
/// long targets), executables, an empty directory, files to exclude.
fn awkward_tree(root: &Path) {
    let deep = root.join("lib/".to_string() + &"a-rather-long-directory-name/".repeat(5));
    fs::create_dir_all(&deep).expect("deep");
    fs::write(deep.join("file-with-a-long-name.txt"), "deep\n").expect("write");
    fs::create_dir_all(root.join("bin")).expect("bin");
    fs::write(root.join("bin/tool"), "#!/bin/sh\necho tool\n").expect("write");
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).expect("chmod");
    symlink("tool", root.join("bin/tool-alias")).expect("symlink");
    symlink("/usr/share/zoneinfo/UTC", root.join("bin/zone")).expect("symlink");
    let long_target = format!(
        "../lib/{}file-with-a-long-name.txt",
        "a-rather-long-directory-name/".repeat(5)
    );
    symlink(&long_target, root.join("bin/deep-link")).expect("symlink");
    fs::create_dir_all(root.join("var/empty")).expect("empty");
    fs::write(root.join("notes.swp"), "excluded").expect("write");
    fs::create_dir_all(root.join(".git")).expect("git");
    fs::write(root.join(".git/HEAD"), "excluded").expect("write");
}

fn manifest_for(directory: &Path, extra: &str) -> std::path::PathBuf {
    let manifest = directory.join("debstage.toml");
    let text = format!(
        r#"[package]
name = "tree"
version = "2.0~rc1"
maintainer = "Tester <tester@example.com>"
description = "A tree with awkward entries"

[environment]
kind = "dir"
source = "tree"

[files]
exclude = ["*.swp", ".git"]
{extra}"#
    );
    fs::write(&manifest, text).expect("manifest");
    manifest
}

#[test]
fn trees_keep_modes_symlinks_and_long_paths_like_dpkg_deb() {
    let temp = tempfile::tempdir().expect("temp");
    awkward_tree(&temp.path().join("tree"));
    let manifest = manifest_for(temp.path(), "");
    for compress in ["xz", "gzip", "zstd"] {
        let out = temp.path().join(format!("out-{compress}"));
        build(&manifest, &out, &["--compress", compress, "--level", "3"]);
        // The version's '~' cannot be in a package name: it is written as '-'.
        let payload = out.join("tree-2.0-rc1_2.0~rc1-1_all.deb");
        assert!(payload.exists(), "{:?}", files_in(&out));
        let members = run_ok(Command::new("ar").arg("t").arg(&payload));
        let extension = match compress {
            "gzip" => "gz",
            "zstd" => "zst",
            other => other,
        };
        assert_eq!(
            stdout(&members),
            format!("debian-binary\ncontrol.tar.{extension}\ndata.tar.{extension}\n")
        );
        let listing = contents(&payload);
        assert!(
            listing.contains(
                &"lrwxrwxrwx root/root ./opt/tree/2.0~rc1/bin/tool-alias -> tool".to_string()
            ),
            "{listing:#?}"
        );
        assert!(listing.contains(
            &"lrwxrwxrwx root/root ./opt/tree/2.0~rc1/bin/zone -> /usr/share/zoneinfo/UTC"
                .to_string()
        ));
        assert!(listing
            .iter()
            .any(|line| line.ends_with("file-with-a-long-name.txt") && line.len() > 150));
        assert!(listing
            .iter()
            .any(|line| line.contains("bin/deep-link -> ../lib/a-rather-long")));
        assert!(listing.contains(&"drwxr-xr-x root/root ./opt/tree/2.0~rc1/var/empty/".to_string()));
        assert!(
            !listing
                .iter()
                .any(|line| line.contains(".swp") || line.contains(".git")),
            "{listing:#?}"
        );
        let unpacked = temp.path().join(format!("x-{compress}"));
        run_ok(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(&payload)
                .arg(&unpacked),
        );
        let deep_link = unpacked.join("opt/tree/2.0~rc1/bin/deep-link");
        assert_eq!(fs::read_to_string(deep_link).expect("follows"), "deep\n");
    }

    // The same tree packed by dpkg-deb lists the same entries with the same modes.
    let root = temp.path().join("reference");
    fs::create_dir_all(root.join("opt/tree")).expect("dirs");
    copy_tree(&temp.path().join("tree"), &root.join("opt/tree/2.0~rc1"));
    fs::remove_file(root.join("opt/tree/2.0~rc1/notes.swp")).expect("rm");
    fs::remove_dir_all(root.join("opt/tree/2.0~rc1/.git")).expect("rm");
    fs::create_dir_all(root.join("DEBIAN")).expect("DEBIAN");
    fs::write(root.join("DEBIAN/control"), "Package: tree-2.0-rc1\nVersion: 2.0~rc1-1\nArchitecture: all\nMaintainer: Tester <tester@example.com>\nDescription: reference\n").expect("control");
    let reference = temp.path().join("reference.deb");
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "-b"])
            .arg(&root)
            .arg(&reference),
    );
    let ours: Vec<String> = contents(&temp.path().join("out-xz/tree-2.0-rc1_2.0~rc1-1_all.deb"))
        .into_iter()
        .filter(|line| line.contains("./opt/") || line.ends_with(" ./"))
        .collect();
    // Except /opt itself: base-files makes it and no package may own it (a payload that
    // did would take it away when purged, as piuparts reports).
    let reference: Vec<String> = contents(&reference)
        .into_iter()
        .filter(|line| !line.ends_with(" ./opt/"))
        .collect();
    assert_eq!(ours, reference);
}

#[test]
fn version_and_revision_can_be_overridden() {
    let (temp, app) = example("hello");
    let out = temp.path().join("out");
    build(
        &app.join("debstage.toml"),
        &out,
        &["--version", "1.1", "--revision", "3"],
    );
    assert!(
        out.join("hello-1.1_1.1-3_all.deb").exists(),
        "{:?}",
        files_in(&out)
    );
    assert!(out.join("hello-production_1.1-3_all.deb").exists());
    assert_eq!(
        deb_field(&out.join("hello-test_1.1-3_all.deb"), "Depends"),
        "hello-1.1 (= 1.1-3)"
    );
}

/// Runs a build that must fail; gives its output.
fn build_fails(manifest: &Path, out: &Path) -> std::process::Output {
    run_fail(
        debstage()
            .arg("build")
            .arg("--manifest")
            .arg(manifest)
            .arg("--out")
            .arg(out),
    )
}

/// A failed build leaves no temporary `.debstage*` directory beside `--out`.
fn assert_no_build_leftovers(directory: &Path) {
    let leftovers: Vec<String> = files_in(directory)
        .into_iter()
        .filter(|name| name.starts_with(".debstage"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Each bad manifest gets one clear error naming the file and the key, and writes nothing.
#[test]
fn bad_manifests_get_clear_errors_and_write_nothing() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "name = \"hello\"",
            "name = \"Shop_App\"",
            &["[package] name", "Shop_App", "[a-z0-9][a-z0-9+.-]+"],
        ),
        (
            "maintainer = \"Release Engineering <release@example.com>\"\n",
            "",
            &["missing field `maintainer`"],
        ),
        (
            "revision = \"1\"",
            "revision = \"1\"\ncolour = \"blue\"",
            &["unknown field `colour`", "line"],
        ),
        (
            "activate = \"hooks/activate\"",
            "activate = \"hooks/activate; rm -rf /\"",
            &["[hooks] activate", "may contain only"],
        ),
        (
            "command = \"bin/hello --greeting Hello\"",
            "command = \"bin/hello --greeting $(id)\"",
            &["[service] command", "'$'"],
        ),
        (
            "source = \"app\"",
            "source = \"missing\"",
            &["[environment] source", "missing: no such directory"],
        ),
        (
            "version = \"1.0\"",
            "version = \"1.0-beta\"",
            &["[package] version", "revision"],
        ),
        (
            "version = \"1.0\"",
            "version = \"1.0B\"",
            &["[package] version", "lowercase"],
        ),
        (
            "names = [\"test\", \"staging\", \"production\"]",
            "names = [\"test\", \"Prod\"]",
            &["[stages] names", "\"Prod\""],
        ),
        (
            "activate = \"hooks/activate\"",
            "activate = \"hooks/missing\"",
            &["[hooks] activate", "not in the release directory"],
        ),
        (
            "settle = \"5s\"",
            "settle = \"5 minutes\"",
            &["[service] settle", "\"5 minutes\"", "500ms"],
        ),
        (
            "settle = \"5s\"",
            "settle = \"3600s\"",
            &["[service] settle", "at most 10m"],
        ),
        (
            "names = [\"test\", \"staging\", \"production\"]",
            "names = [\"test\", \"staging\", \"production\"]\nkeep = 101",
            &["[stages] keep", "101: must be 0 to 100"],
        ),
    ];
    for (from, to, expected) in cases {
        let (temp, app) = example("hello");
        let manifest = app.join("debstage.toml");
        let text = fs::read_to_string(&manifest).expect("manifest");
        assert!(text.contains(from), "{from}");
        fs::write(&manifest, text.replacen(from, to, 1)).expect("write");
        let out = temp.path().join("out");
        let output = build_fails(&manifest, &out);
        assert_eq!(output.status.code(), Some(1));
        let message = stderr(&output);
        assert!(
            message.contains(&manifest.display().to_string()),
            "names the file: {message}"
        );
        for part in *expected {
            assert!(
                message.contains(part),
                "{to:?}: expected {part:?} in: {message}"
            );
        }
        assert_eq!(
            message
                .lines()
                .filter(|line| line.starts_with("error:"))
                .count(),
            1,
            "{message}"
        );
        assert!(!out.exists(), "{to:?}: --out was created");
        assert_no_build_leftovers(temp.path());
    }
}

/// ELF files of two architectures in one tree: the build fails naming both files, and
/// leaves nothing behind.
#[test]
fn a_failed_elf_scan_is_reported_and_writes_nothing() {
    let (temp, app) = example("hello");
    let tree = app.join("app");
    let mut elf = fs::read("/bin/true").expect("read /bin/true");
    fs::create_dir_all(tree.join("bin")).expect("mkdir");
    fs::write(tree.join("bin/native"), &elf).expect("write");
    // e_machine (offset 18): RISC-V on arm64 hosts, AArch64 elsewhere.
    let other: u16 = if std::env::consts::ARCH == "aarch64" {
        243
    } else {
        183
    };
    elf[18..20].copy_from_slice(&other.to_le_bytes());
    fs::write(tree.join("bin/foreign"), &elf).expect("write");
    let out = temp.path().join("out");
    let output = build_fails(&app.join("debstage.toml"), &out);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("bin/native"), "{message}");
    assert!(message.contains("bin/foreign"), "{message}");
    assert!(!out.exists(), "--out was created");
    assert_no_build_leftovers(temp.path());
}

#[test]
fn init_writes_a_manifest_that_builds() {
    let temp = tempfile::tempdir().expect("temp");
    let app = temp.path().join("billing");
    fs::create_dir_all(&app).expect("mkdir");
    fs::write(app.join("README"), "billing\n").expect("write");
    run_ok(debstage().arg("init").arg(&app));
    assert!(fs::read_to_string(app.join("debstage.toml"))
        .expect("manifest")
        .contains("name = \"billing\""));
    let output = run_fail(debstage().arg("init").arg(&app));
    assert!(stderr(&output).contains("already exists"));
    let out = temp.path().join("out");
    build(&app.join("debstage.toml"), &out, &[]);
    assert!(
        out.join("billing-0.1.0_0.1.0-1_all.deb").exists(),
        "{:?}",
        files_in(&out)
    );
}

/// ELF files are found by the md5 pass: a small one from the bytes it holds, a large one
/// (hashed as a stream) from disk. A library the tree bundles under a symbolic link's
/// name needs no package, even when the file it points to has no soname; a link to the
/// build machine's library bundles nothing.
#[test]
fn elf_files_large_and_small_and_libraries_bundled_by_link_give_the_depends() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tree = temp.path().join("tree");
    fs::create_dir_all(tree.join("bin")).expect("mkdir");
    fs::create_dir_all(tree.join("lib")).expect("mkdir");
    fs::write(
        temp.path().join("impl.c"),
        "int impl(int x) { return x * 2; }\n",
    )
    .expect("write");
    fs::write(
        temp.path().join("exe.c"),
        "#include <zlib.h>\nint impl(int);\n\
         int main(int c, char **v) { (void)v; return impl(c) + (zlibVersion() != 0); }\n",
    )
    .expect("write");
    // No -soname: the library's only name is its file's, and the executable records
    // the name it was linked by, which only the symbolic link has.
    run_ok(Command::new("gcc").current_dir(temp.path()).args([
        "-shared",
        "-fPIC",
        "-o",
        "tree/lib/libimpl-real.so",
        "impl.c",
    ]));
    symlink("libimpl-real.so", tree.join("lib/libimpl.so.1")).expect("symlink");
    run_ok(Command::new("gcc").current_dir(temp.path()).args([
        "-o",
        "tree/bin/exe",
        "exe.c",
        "-Ltree/lib",
        "-l:libimpl.so.1",
        "-lz",
    ]));
    // The tree carries a link to the system's zlib: that is not bundling it.
    let zlib = fs::canonicalize(format!("/lib/{}/libz.so.1", multiarch())).expect("zlib");
    symlink(&zlib, tree.join("lib/libz.so.1")).expect("symlink");
    let manifest = manifest_for(temp.path(), "");
    let out = temp.path().join("out");
    let payload = payload_of(&out, &build(&manifest, &out, &[]));
    assert_eq!(deb_field(&payload, "Architecture"), deb_architecture());
    let depends = deb_field(&payload, "Depends");
    assert!(depends.starts_with("libc6 (>= "), "{depends}");
    assert!(depends.contains("zlib1g (>= "), "{depends}");
    assert!(!depends.contains("impl"), "{depends}");

    // Only a large ELF file (well above the md5 pass's 16 MiB in-memory limit): it is
    // still found, and still gives the architecture and the Depends.
    fs::remove_dir_all(&tree).expect("rm");
    fs::create_dir_all(tree.join("bin")).expect("mkdir");
    let mut large = fs::read("/bin/true").expect("read /bin/true");
    large.resize(large.len() + (20 << 20), 0);
    fs::write(tree.join("bin/large"), &large).expect("write");
    fs::remove_dir_all(&out).expect("rm");
    let payload = payload_of(&out, &build(&manifest, &out, &[]));
    assert_eq!(deb_field(&payload, "Architecture"), deb_architecture());
    let depends = deb_field(&payload, "Depends");
    assert!(depends.starts_with("libc6 (>= "), "{depends}");
}

fn payload_of(out: &Path, manifest: &serde_json::Value) -> std::path::PathBuf {
    let packages = manifest["packages"].as_array().expect("packages");
    let payload = packages
        .iter()
        .find(|package| package["role"] == "payload")
        .expect("a payload package");
    out.join(payload["file"].as_str().expect("file"))
}

fn multiarch() -> String {
    let output = run_ok(Command::new("gcc").arg("-print-multiarch"));
    stdout(&output).trim().to_string()
}

fn deb_architecture() -> String {
    let output = run_ok(Command::new("dpkg").arg("--print-architecture"));
    stdout(&output).trim().to_string()
}

/// Entries that cannot be packaged, deep in the tree (the listing runs on every core), are
/// errors naming the path, and nothing is written.
#[test]
fn unpackable_entries_deep_in_the_tree_are_errors_naming_them() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tree = temp.path().join("tree");
    let deep = tree.join("a/b/c");
    fs::create_dir_all(&deep).expect("mkdir");
    fs::write(tree.join("a/fine.txt"), "fine\n").expect("write");
    let manifest = manifest_for(temp.path(), "");
    let out = temp.path().join("out");
    // (name, a FIFO rather than a file, the error expected)
    let cases = [
        (
            "back\\slash",
            false,
            "may not contain newlines or backslashes",
        ),
        (
            "pipe",
            true,
            "only regular files, directories and symbolic links",
        ),
    ];
    for (name, fifo, expected) in cases {
        let path = deep.join(name);
        if fifo {
            run_ok(Command::new("mkfifo").arg(&path));
        } else {
            fs::write(&path, "x").expect("write");
        }
        let output = build_fails(&manifest, &out);
        let message = stderr(&output);
        assert!(message.contains(expected), "{message}");
        assert!(message.contains(&format!("a/b/c/{name}")), "{message}");
        assert!(!out.exists(), "--out was created");
        assert_no_build_leftovers(temp.path());
        fs::remove_file(&path).expect("rm");
    }
}

/// Listing a deep tree keeps few directories open: 300 levels build with at most 64 open
/// files.
#[test]
fn a_deep_tree_builds_with_few_open_files() {
    let temp = tempfile::tempdir().expect("temp dir");
    let deep = temp.path().join("tree").join("d/".repeat(300));
    fs::create_dir_all(&deep).expect("mkdir");
    fs::write(deep.join("leaf.txt"), "leaf\n").expect("write");
    let manifest = manifest_for(temp.path(), "");
    let out = temp.path().join("out");
    let binary = debstage().get_program().to_owned();
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 64 && exec \"$0\" build --manifest \"$1\" --out \"$2\"")
            .arg(binary)
            .arg(&manifest)
            .arg(&out),
    );
    let payload = files_in(&out)
        .into_iter()
        .find(|name| name.starts_with("tree-2.0"))
        .expect("payload written");
    let listed = contents(&out.join(payload));
    assert!(
        listed.iter().any(|line| line.ends_with("/leaf.txt")),
        "{listed:?}"
    );
}

/// A manifest reads only its application's files: an extra file or a version file that
/// leads outside the application directory (by path or by a link) fails the build naming
/// the key, and no error shows the text of a file.
#[test]
fn a_manifest_reads_only_files_of_its_application() {
    let secret_line = "root:SECRET-HASH:19000:0:99999:7:::";
    let cases: &[(&str, &str, &str)] = &[
        (
            "version = \"1.0\"",
            "[[files.extra]]\nsource = \"/etc/secret-file\"\ndest = \"/etc/hello/{stage}.conf\"\n",
            "[[files.extra]] source",
        ),
        (
            "version = \"1.0\"",
            "[[files.extra]]\nsource = \"linked\"\ndest = \"/etc/hello/{stage}.conf\"\n",
            "[[files.extra]] source",
        ),
        (
            "version = \"1.0\"",
            "version-file = \"../secret-file\"",
            "[package] version-file",
        ),
        (
            "version = \"1.0\"",
            "version-file = \"linked\"",
            "[package] version-file",
        ),
    ];
    for (from, to, key) in cases {
        let (temp, app) = example("hello");
        let secret = temp.path().join("secret-file");
        fs::write(&secret, format!("{secret_line}\n")).expect("secret");
        std::os::unix::fs::symlink(&secret, app.join("linked")).expect("link");
        let manifest = app.join("debstage.toml");
        let text = fs::read_to_string(&manifest)
            .expect("manifest")
            .replace("/etc/secret-file", &secret.display().to_string());
        let to = to.replace("/etc/secret-file", &secret.display().to_string());
        let changed = if to.starts_with("[[files.extra]]") {
            format!("{text}\n{to}")
        } else {
            text.replacen(from, &to, 1)
        };
        fs::write(&manifest, changed).expect("write");
        let out = temp.path().join("out");
        let message = stderr(&build_fails(&manifest, &out));
        assert!(message.contains(key), "{to}: names {key}: {message}");
        assert!(
            message.contains("outside the application directory"),
            "{to}: says why: {message}"
        );
        assert!(
            !message.contains("SECRET-HASH"),
            "{to}: shows the file: {message}"
        );
        assert!(!out.exists());
    }
}

/// The errors a new user meets first say the next step.
#[test]
fn errors_say_the_next_step() {
    let temp = tempfile::tempdir().expect("temp");
    let missing = run_fail(
        debstage()
            .current_dir(temp.path())
            .args(["build", "--out", "out"]),
    );
    let message = stderr(&missing);
    assert!(
        message.contains("debstage init") && message.contains("--manifest"),
        "{message}"
    );
    let (temp, app) = example("hello");
    let output = run_fail(
        debstage()
            .args(["build", "--manifest"])
            .arg(app.join("debstage.toml"))
            .arg("--out")
            .arg(temp.path().join("out"))
            .args(["--version", "1.0-rc1"]),
    );
    let message = stderr(&output);
    assert!(
        message.contains("--version") && message.contains("not the manifest"),
        "{message}"
    );
}

/// `{stage}`, `{version}` and `{release_dir}` in the service command, the health check and
/// the hook are replaced in each stage package; any other brace is refused.
#[test]
fn placeholders_are_replaced_per_stage() {
    let (temp, app) = example("hello");
    let manifest = app.join("debstage.toml");
    let text = fs::read_to_string(&manifest).expect("manifest");
    let text = text
        .replace(
            "command = \"bin/hello --greeting Hello\"",
            "command = \"bin/hello --greeting Hello-{stage}-{version} --root={release_dir}\"",
        )
        .replace(
            "activate = \"hooks/activate\"",
            "activate = \"hooks/activate {stage}\"",
        );
    fs::write(&manifest, &text).expect("write");
    let out = temp.path().join("out");
    build(&manifest, &out, &[]);
    let unpacked = temp.path().join("unpacked");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-R")
            .arg(out.join("hello-staging_1.0-1_all.deb"))
            .arg(&unpacked),
    );
    let unit = fs::read_to_string(unpacked.join("lib/systemd/system/hello-staging.service"))
        .expect("unit");
    assert!(
        unit.contains(
            "ExecStart=/opt/hello/staging/bin/hello --greeting Hello-staging-1.0 --root=/opt/hello/1.0\n"
        ),
        "{unit}"
    );
    let postinst = fs::read_to_string(unpacked.join("DEBIAN/postinst")).expect("postinst");
    assert!(
        postinst.contains("'hooks/activate' 'staging'"),
        "{postinst}"
    );
    assert!(!postinst.contains("{stage}"), "{postinst}");

    fs::write(&manifest, text.replace("{stage}-{version}", "{home}")).expect("write");
    let message = stderr(&build_fails(&manifest, &temp.path().join("out2")));
    assert!(
        message.contains("[service] command")
            && message.contains("{stage}, {version}, {release_dir}"),
        "{message}"
    );
}

/// On a terminal the build shows a bar of the bytes it compresses; not when stderr is not
/// a terminal, and not with --quiet. (`script` from util-linux gives the build a pty.)
#[test]
fn a_progress_bar_only_on_a_terminal() {
    let (temp, app) = example("hello");
    let blob: Vec<u8> = (0..4_000_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(app.join("app/blob"), blob).expect("blob");
    let manifest = app.join("debstage.toml");
    let on_terminal = |extra: &str, out: &str| {
        let command = format!(
            "{} build --manifest {} --out {} --compress gzip {extra}",
            env!("CARGO_BIN_EXE_debstage"),
            manifest.display(),
            temp.path().join(out).display()
        );
        let output = run_ok(Command::new("script").args(["-qec", &command, "/dev/null"]));
        stdout(&output)
    };
    assert!(
        on_terminal("", "a").contains("compressing ["),
        "no bar on a terminal"
    );
    assert!(
        !on_terminal("--quiet", "b").contains("compressing"),
        "a bar with --quiet"
    );
    let piped = run_ok(
        debstage()
            .args(["build", "--manifest"])
            .arg(&manifest)
            .arg("--out")
            .arg(temp.path().join("c")),
    );
    assert!(
        !stderr(&piped).contains("compressing"),
        "a bar without a terminal"
    );
}

/// Without SOURCE_DATE_EPOCH a build whose environment generates its tree (a `command`
/// environment here) gives the same bytes twice, a few seconds apart: the times come from
/// the application's files, not from what the command wrote.
#[test]
fn generated_trees_are_reproducible_without_source_date_epoch() {
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("gen");
    fs::create_dir_all(&app).expect("app dir");
    fs::write(
        app.join("debstage.toml"),
        r#"[package]
name = "gen"
version = "1.0"
maintainer = "Tester <tester@example.com>"
description = "Generated at build time"

[environment]
kind = "command"
command = "sh make.sh"
"#,
    )
    .expect("manifest");
    fs::write(
        app.join("make.sh"),
        "mkdir -p \"$DESTDIR/bin\" && printf '#!/bin/sh\\necho generated\\n' > \"$DESTDIR/bin/gen\" && chmod 755 \"$DESTDIR/bin/gen\"\n",
    )
    .expect("script");
    let build_into = |out: &str| {
        run_ok(
            debstage()
                .args(["--quiet", "build", "--manifest"])
                .arg(app.join("debstage.toml"))
                .arg("--out")
                .arg(temp.path().join(out))
                .args(["--compress", "gzip"])
                .env_remove("SOURCE_DATE_EPOCH"),
        );
    };
    build_into("one");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    build_into("two");
    let names = files_in(&temp.path().join("one"));
    assert_eq!(names.len(), 5, "{names:?}");
    for name in names {
        assert_eq!(
            fs::read(temp.path().join("one").join(&name)).expect("one"),
            fs::read(temp.path().join("two").join(&name)).expect("two"),
            "{name} differs between two builds of the same input"
        );
    }
}

/// What is not the application never ships unless named: the manifest, `.git`, `.env`
/// files and an `--out` inside the application (which would otherwise grow with each
/// build); the build says what it left out. The hook init writes under `.debstage/`
/// ships.
#[test]
fn a_build_leaves_out_what_is_not_the_application() {
    let temp = tempfile::tempdir().expect("temp");
    let app = temp.path().join("site");
    fs::create_dir_all(app.join(".git/objects")).expect("mkdir");
    fs::create_dir_all(app.join("sub")).expect("mkdir");
    fs::write(app.join("index.html"), "<p>site</p>\n").expect("write");
    fs::write(app.join(".git/HEAD"), "ref: refs/heads/main\n").expect("write");
    fs::write(app.join(".env"), "SECRET=1\n").expect("write");
    fs::write(app.join("sub/.env.local"), "SECRET=2\n").expect("write");
    fs::write(app.join(".env.defaults"), "PORT=80\n").expect("write");
    fs::write(app.join(".envrc"), "use nix\n").expect("write");
    run_ok(debstage().arg("init").arg(&app));
    let manifest = app.join("debstage.toml");
    let text = fs::read_to_string(&manifest).expect("manifest");
    fs::write(
        &manifest,
        text.replace(
            "include = [\"**\"]",
            "include = [\"**\", \".env.defaults\"]",
        ),
    )
    .expect("write");
    let out = app.join("out");
    let mut sizes = Vec::new();
    for _ in 0..2 {
        let output = run_ok(
            debstage()
                .args(["build", "--manifest"])
                .arg(&manifest)
                .arg("--out")
                .arg(&out)
                .env("SOURCE_DATE_EPOCH", "1700000000"),
        );
        let message = stderr(&output);
        assert!(
            message.contains("Left out of the release")
                && message.contains(".env, ")
                && message.contains(".git/")
                && message.contains("debstage.toml")
                && message.contains("sub/.env.local"),
            "{message}"
        );
        let payload = out.join("site-0.1.0_0.1.0-1_all.deb");
        sizes.push(fs::metadata(&payload).expect("payload").len());
        let listing = stdout(&run_ok(Command::new("dpkg-deb").arg("-c").arg(&payload)));
        for shipped in [
            "/opt/site/0.1.0/index.html",
            "/opt/site/0.1.0/.env.defaults",
            "/opt/site/0.1.0/.envrc",
            "/opt/site/0.1.0/.debstage/activate",
        ] {
            assert!(listing.contains(shipped), "{shipped} missing:\n{listing}");
        }
        for left in ["/.env\n", ".env.local", "/.git/", "debstage.toml", "/out/"] {
            assert!(!listing.contains(left), "{left} shipped:\n{listing}");
        }
    }
    assert_eq!(sizes[0], sizes[1], "the second build packaged the first");
}

/// Two fresh clones of one commit (every file with the clone's time) build the same bytes
/// without SOURCE_DATE_EPOCH: the last commit touching the application directory gives
/// the time, and the build manifest says so with the commit. An uncommitted change falls
/// back to the newest file, recorded as dirty.
#[test]
fn two_git_clones_build_the_same_bytes() {
    let temp = tempfile::tempdir().expect("temp");
    let origin = temp.path().join("origin");
    let app = origin.join("services/site");
    fs::create_dir_all(&app).expect("mkdir");
    fs::write(app.join("index.html"), "<p>site</p>\n").expect("write");
    fs::write(origin.join("README"), "monorepo\n").expect("write");
    run_ok(debstage().arg("init").arg(&app));
    let git = |directory: &Path, arguments: &[&str]| {
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(directory)
                .args(arguments)
                .env("GIT_AUTHOR_NAME", "Test")
                .env("GIT_AUTHOR_EMAIL", "test@example.org")
                .env("GIT_COMMITTER_NAME", "Test")
                .env("GIT_COMMITTER_EMAIL", "test@example.org")
                .env("GIT_AUTHOR_DATE", "@1690000000 +0000")
                .env("GIT_COMMITTER_DATE", "@1690000000 +0000"),
        )
    };
    git(&origin, &["init", "-q", "-b", "main"]);
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-q", "-m", "site"]);
    // A later commit outside the application directory does not move its time.
    fs::write(origin.join("README"), "monorepo, edited\n").expect("write");
    git(
        &origin,
        &[
            "-c",
            "core.hooksPath=/dev/null",
            "commit",
            "-q",
            "-am",
            "readme",
        ],
    );
    let head = stdout(&git(&origin, &["rev-parse", "HEAD"]))
        .trim()
        .to_string();
    let mut payloads = Vec::new();
    for clone in ["one", "two"] {
        let directory = temp.path().join(clone);
        run_ok(
            Command::new("git")
                .args(["clone", "-q"])
                .arg(&origin)
                .arg(&directory),
        );
        let out = directory.join("services/site/target/debstage");
        let output = run_ok(
            debstage()
                .args(["--format", "json", "build", "--manifest"])
                .arg(directory.join("services/site/debstage.toml"))
                .arg("--out")
                .arg(&out)
                .env_remove("SOURCE_DATE_EPOCH"),
        );
        let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        crate::support::schema::assert_valid("build", &document);
        assert_eq!(document["provenance"]["source_date_rule"], "git_commit");
        assert_eq!(document["provenance"]["source_date"], 1690000000);
        assert_eq!(document["provenance"]["git_commit"], head.as_str());
        assert_eq!(document["provenance"]["git_dirty"], false);
        payloads.push(fs::read(out.join("site-0.1.0_0.1.0-1_all.deb")).expect("payload"));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert!(
        payloads[0] == payloads[1],
        "two clones gave different bytes"
    );

    let directory = temp.path().join("one/services/site");
    fs::write(directory.join("index.html"), "<p>changed</p>\n").expect("write");
    let output = run_ok(
        debstage()
            .args(["--format", "json", "build", "--manifest"])
            .arg(directory.join("debstage.toml"))
            .arg("--out")
            .arg(temp.path().join("dirty"))
            .env_remove("SOURCE_DATE_EPOCH"),
    );
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(document["provenance"]["source_date_rule"], "newest_file");
    assert_eq!(document["provenance"]["git_dirty"], true);
    // With --format json the document says it; stderr carries no progress lines.
    assert!(
        !stderr(&output).contains("Time of the packages"),
        "{}",
        stderr(&output)
    );
}
