//! A small tree of ELF files built with gcc, for the tests of [`super::elf`] and
//! [`super::shlibs`], and the reference answers of dpkg's own tools.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::build::depends::elf::{self, ElfReport};
use crate::build::manifest::{self, LoadedManifest};
use crate::deb::{self, Content, Entry};

/// A tree `tree/` with `bin/exe` (needs libfoo, libz, libm, libc) and the bundled
/// `lib/libfoo.so.1`, plus `libmissing.so.7` built outside the tree.
pub(super) struct Fixture {
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
    pub(super) fn new() -> Fixture {
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

    pub(super) fn path(&self, relative: &str) -> PathBuf {
        self.directory.path().join(relative)
    }

    /// The given files (paths under the fixture, `tree/...`) as entries of the data
    /// archive, with their paths in the tree, as the build lists them.
    fn entries(&self, relatives: &[&str]) -> Vec<Entry> {
        relatives
            .iter()
            .map(|relative| {
                let source = self.path(relative);
                let metadata = std::fs::symlink_metadata(&source).expect("listed");
                let content = if metadata.is_symlink() {
                    let target = std::fs::read_link(&source).expect("link");
                    Content::Symlink(target.as_os_str().as_bytes().to_vec())
                } else {
                    Content::File {
                        source,
                        size: metadata.len(),
                    }
                };
                Entry {
                    path: relative.trim_start_matches("tree/").to_string(),
                    mode: 0o755,
                    mtime: None,
                    content,
                }
            })
            .collect()
    }

    /// What the ELF files among `relatives` need and provide, found the way the build
    /// finds it: the md5 pass hands each file (its bytes when it holds them) to
    /// [`elf::read_file`], the symbolic links go to [`elf::report`] beside them.
    pub(super) fn inspect(&self, relatives: &[&str]) -> Result<ElfReport> {
        let entries = self.entries(relatives);
        let (_, elves) = deb::md5sums::digest_and_inspect(&entries, |file| {
            elf::read_file(file.source, file.path, file.bytes)
        })?;
        elf::report(elves, &links(&entries))
    }

    /// The same, each file read from disk as the md5 pass does for a file too large to
    /// hold (it streams those and hands over no bytes).
    pub(super) fn inspect_from_disk(&self, relatives: &[&str]) -> Result<ElfReport> {
        let entries = self.entries(relatives);
        let mut elves = Vec::new();
        for entry in &entries {
            if let Content::File { source, .. } = &entry.content {
                elves.extend(elf::read_file(source, &entry.path, None)?);
            }
        }
        elf::report(elves, &links(&entries))
    }

    pub(super) fn manifest(&self, depends: &str) -> LoadedManifest {
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

/// The symbolic links among `entries`: path in the tree, target.
fn links(entries: &[Entry]) -> Vec<(String, PathBuf)> {
    entries
        .iter()
        .filter_map(|entry| match &entry.content {
            Content::Symlink(target) => Some((
                entry.path.clone(),
                PathBuf::from(std::ffi::OsStr::from_bytes(target)),
            )),
            _ => None,
        })
        .collect()
}

pub(super) fn host_architecture() -> String {
    let output = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .expect("dpkg runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// What dpkg-shlibdeps says for the given files, as a sorted list of relations.
pub(super) fn dpkg_shlibdeps(
    work: &Path,
    files: &[PathBuf],
    library_directory: &Path,
) -> Vec<String> {
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
