//! ELF scanning and soname mapping, on small files built with gcc, checked against
//! `dpkg --print-architecture` and `dpkg-shlibdeps`.

use std::path::{Path, PathBuf};
use std::process::Command;

use debstage::build::depends::elf;
use debstage::build::manifest::{self, LoadedManifest};

/// A tree `tree/` with `bin/exe` (needs libfoo, libz, libm, libc) and the bundled
/// `lib/libfoo.so.1`, plus `libmissing.so.7` built outside the tree.
struct Fixture {
    directory: tempfile::TempDir,
}

fn run(command: &mut Command) {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Fixture {
    fn new() -> Fixture {
        let directory = tempfile::tempdir().expect("temp dir");
        let root = directory.path();
        std::fs::create_dir_all(root.join("tree/bin")).expect("mkdir");
        std::fs::create_dir_all(root.join("tree/lib")).expect("mkdir");
        std::fs::create_dir_all(root.join("outside")).expect("mkdir");
        std::fs::write(root.join("foo.c"), "int foo(int x) { return x + 1; }\n").expect("write");
        std::fs::write(root.join("missing.c"), "int missing(void) { return 7; }\n").expect("write");
        std::fs::write(
            root.join("exe.c"),
            "#include <zlib.h>\n#include <math.h>\n#include <stdio.h>\nint foo(int);\n\
             int main(int c, char **v) { (void)v; printf(\"%s %f %d\\n\", zlibVersion(), \
             sqrt((double)c), foo(c)); return 0; }\n",
        )
        .expect("write");
        std::fs::write(
            root.join("needs-missing.c"),
            "int missing(void);\nint main(void) { return missing(); }\n",
        )
        .expect("write");
        run(Command::new("gcc")
            .current_dir(root)
            .args(["-shared", "-fPIC", "-Wl,-soname,libfoo.so.1"])
            .args(["-o", "tree/lib/libfoo.so.1", "foo.c"]));
        run(Command::new("gcc")
            .current_dir(root)
            .args(["-shared", "-fPIC", "-Wl,-soname,libmissing.so.7"])
            .args(["-o", "outside/libmissing.so.7", "missing.c"]));
        run(Command::new("gcc")
            .current_dir(root)
            .args([
                "-o",
                "tree/bin/exe",
                "exe.c",
                "-Ltree/lib",
                "-l:libfoo.so.1",
            ])
            .args(["-lz", "-lm", "-Wl,-rpath,$ORIGIN/../lib"]));
        run(Command::new("gcc")
            .current_dir(root)
            .args(["-o", "needs-missing", "needs-missing.c", "-Loutside"])
            .arg("-l:libmissing.so.7"));
        Fixture { directory }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.directory.path().join(relative)
    }

    fn files(&self, relatives: &[&str]) -> Vec<(PathBuf, String)> {
        relatives
            .iter()
            .map(|relative| {
                let tree_path = relative.trim_start_matches("tree/").to_string();
                (self.path(relative), tree_path)
            })
            .collect()
    }

    fn manifest(&self, depends: &str) -> LoadedManifest {
        let path = self.path("debstage.toml");
        std::fs::write(
            &path,
            format!(
                "[package]\nname = \"elfapp\"\nversion = \"1.0\"\n\
                 maintainer = \"Test <test@example.com>\"\ndescription = \"ELF test\"\n\
                 [environment]\nkind = \"dir\"\nsource = \"tree\"\n{depends}"
            ),
        )
        .expect("write manifest");
        manifest::load(&path, None, None).expect("manifest loads")
    }
}

fn host_architecture() -> String {
    let output = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .expect("dpkg runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// What dpkg-shlibdeps says for the given files, as a sorted list of relations.
fn dpkg_shlibdeps(work: &Path, files: &[PathBuf], library_directory: &Path) -> Vec<String> {
    std::fs::create_dir_all(work.join("debian")).expect("mkdir");
    std::fs::write(
        work.join("debian/control"),
        "Source: x\n\nPackage: x\nArchitecture: any\n",
    )
    .expect("write control");
    let output = Command::new("dpkg-shlibdeps")
        .current_dir(work)
        .arg("-O")
        .arg("--ignore-missing-info")
        .arg(format!("-l{}", library_directory.display()))
        .args(files.iter().map(|file| format!("-e{}", file.display())))
        .output()
        .expect("dpkg-shlibdeps runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let value = text
        .trim()
        .strip_prefix("shlibs:Depends=")
        .expect("shlibs:Depends line");
    let mut relations: Vec<String> = value.split(", ").map(str::to_string).collect();
    relations.sort();
    relations
}

#[test]
fn scan_finds_architecture_needed_and_bundled() {
    let fixture = Fixture::new();
    std::fs::write(fixture.path("tree/README"), "not an ELF file\n").expect("write");
    let report =
        elf::scan(&fixture.files(&["tree/bin/exe", "tree/lib/libfoo.so.1", "tree/README"]))
            .expect("scan");
    assert_eq!(
        report.architecture.as_deref(),
        Some(host_architecture().as_str())
    );
    assert!(report.bundled.contains("libfoo.so.1"), "{report:?}");
    let needed: Vec<&str> = report
        .needed
        .iter()
        .map(|(soname, _)| soname.as_str())
        .collect();
    assert_eq!(needed, ["libc.so.6", "libm.so.6", "libz.so.1"]);
    assert!(report
        .needed
        .iter()
        .any(|(soname, file)| soname == "libz.so.1" && file == Path::new("bin/exe")));

    // Without the bundled library in the tree, libfoo is needed from the system.
    let report = elf::scan(&fixture.files(&["tree/bin/exe"])).expect("scan");
    assert!(report
        .needed
        .iter()
        .any(|(soname, _)| soname == "libfoo.so.1"));

    // A tree of text files has no architecture and needs nothing.
    let report = elf::scan(&fixture.files(&["tree/README"])).expect("scan");
    assert_eq!(report.architecture, None);
    assert!(report.needed.is_empty());
}

#[test]
fn two_architectures_are_an_error_naming_both_files() {
    let fixture = Fixture::new();
    let mut bytes = std::fs::read(fixture.path("tree/lib/libfoo.so.1")).expect("read");
    // Rewrite e_machine (offset 18) to another machine than the host's.
    let other: u16 = if host_architecture() == "arm64" {
        62
    } else {
        183
    };
    bytes[18..20].copy_from_slice(&other.to_le_bytes());
    std::fs::write(fixture.path("tree/lib/libother.so"), bytes).expect("write");
    let error = elf::scan(&fixture.files(&["tree/bin/exe", "tree/lib/libother.so"]))
        .expect_err("mixed architectures fail");
    let message = format!("{error:#}");
    assert!(message.contains("bin/exe"), "{message}");
    assert!(message.contains("lib/libother.so"), "{message}");
    assert!(message.contains(&host_architecture()), "{message}");
}

#[test]
fn shlibs_mapping_agrees_with_dpkg_shlibdeps() {
    let fixture = Fixture::new();
    let report =
        elf::scan(&fixture.files(&["tree/bin/exe", "tree/lib/libfoo.so.1"])).expect("scan");
    let ours =
        debstage::build::depends::shlibs::resolve(&fixture.manifest(""), &report).expect("resolve");
    let theirs = dpkg_shlibdeps(
        &fixture.path("shlibdeps"),
        &[
            fixture.path("tree/bin/exe"),
            fixture.path("tree/lib/libfoo.so.1"),
        ],
        &fixture.path("tree/lib"),
    );
    assert_eq!(ours, theirs);
    assert!(
        ours.iter()
            .any(|relation| relation.starts_with("zlib1g (>= 1:")),
        "{ours:?}"
    );
    assert!(
        ours.iter()
            .any(|relation| relation.starts_with("libc6 (>= ")),
        "{ours:?}"
    );
}

#[test]
fn unmapped_soname_fails_naming_it_and_the_keys_and_manual_rules_apply() {
    let fixture = Fixture::new();
    std::fs::copy(
        fixture.path("needs-missing"),
        fixture.path("tree/bin/needs-missing"),
    )
    .expect("copy");
    let files = fixture.files(&["tree/bin/needs-missing"]);
    let report = elf::scan(&files).expect("scan");
    let error = debstage::build::depends::shlibs::resolve(&fixture.manifest(""), &report)
        .expect_err("an unknown soname fails");
    let message = format!("{error:#}");
    for expected in [
        "libmissing.so.7",
        "bin/needs-missing",
        "[depends.sonames]",
        "ignore-sonames",
        "debstage.toml",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }

    let manifest = fixture.manifest("[depends]\nignore-sonames = [\"libmissing.so.7\"]\n");
    let relations = debstage::build::depends::shlibs::resolve(&manifest, &report).expect("ignored");
    assert!(relations
        .iter()
        .all(|relation| !relation.contains("missing")));
    assert!(relations
        .iter()
        .any(|relation| relation.starts_with("libc6 ")));

    let manifest =
        fixture.manifest("[depends.sonames]\n\"libmissing.so.7\" = \"libmissing7 (>= 7.1)\"\n");
    let relations = debstage::build::depends::shlibs::resolve(&manifest, &report).expect("mapped");
    assert!(
        relations.contains(&"libmissing7 (>= 7.1)".to_string()),
        "{relations:?}"
    );
}

/// The owners read from dpkg's file lists are dpkg-query's answer, on the libraries of
/// the build machine (with the `/usr` aliases, most of which no package lists).
#[test]
fn file_lists_and_dpkg_query_agree_on_the_machines_libraries() {
    use debstage::build::depends::dpkg_owners;
    let admin = Path::new("/var/lib/dpkg");
    let output = Command::new("gcc")
        .arg("-print-multiarch")
        .output()
        .expect("gcc runs");
    let triplet = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let mut names = std::collections::BTreeSet::new();
    for directory in [format!("/lib/{triplet}"), format!("/usr/lib/{triplet}")] {
        let Ok(entries) = std::fs::read_dir(directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".so.") {
                names.insert(entry.path());
                let text = entry.path().to_string_lossy().into_owned();
                names.insert(PathBuf::from(match text.strip_prefix("/usr") {
                    Some(rest) => rest.to_string(),
                    None => format!("/usr{text}"),
                }));
            }
        }
    }
    assert!(names.len() > 50, "few libraries found: {}", names.len());
    let from_lists = dpkg_owners::from_file_lists(admin, &names)
        .expect("lists readable")
        .expect("no name is diverted or listed twice");
    let from_query = dpkg_owners::from_dpkg_query(admin, &names).expect("dpkg-query runs");
    assert!(
        from_lists
            .values()
            .any(|package| package.starts_with("libc6")),
        "{from_lists:?}"
    );
    // dpkg-query qualifies a foreign package that is not Multi-Arch: same
    // (`libbar1:i386`), whose list file is `libbar1.list`; the symbols and shlibs lookup
    // finds that package's files under either name.
    let unqualified = |owners: std::collections::BTreeMap<PathBuf, String>| {
        owners
            .into_iter()
            .map(|(path, package)| (path, package.split(':').next().unwrap_or("").to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(unqualified(from_lists), unqualified(from_query));
}
