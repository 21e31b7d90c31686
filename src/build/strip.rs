//! Stripping the ELF files of a staged tree, and keeping their debug information for the
//! `<payload>-dbgsym` package in Debian's layout (`/usr/lib/debug/.build-id/xx/rest.debug`).
//!
//! This does what debhelper's dh_strip does for a dbgsym package: for an ELF file that
//! has debug information and carries a GNU build-id, `objcopy --only-keep-debug
//! --compress-debug-sections` writes the debug file; `strip --remove-section=.comment
//! --remove-section=.note` (with `--strip-unneeded` for a shared object) strips it; and
//! `objcopy --add-gnu-debuglink` names the debug file in the stripped one. binutils is the
//! reference for this (no Rust crate writes stripped ELF files that gdb and lintian accept
//! as binutils' output), so the work is done by running it.
//!
//! The tree is never changed: each stripped file is a copy in the build's scratch
//! directory, and its entry is pointed at that copy. Files are found by their ELF header
//! (executables and shared objects), not by their names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use goblin::elf::header::ET_EXEC;
use goblin::elf::program_header::{PT_INTERP, PT_NOTE};
use rayon::prelude::*;

use crate::build::depends::elf;
use crate::build::depends::elf_parts::{ElfParts, PartError};
use crate::deb::{Content, Entry};

/// `NT_GNU_BUILD_ID`, the type of the note that holds the build-id.
const NT_GNU_BUILD_ID: u32 = 3;

/// The sections that make a debug file worth shipping (lintian's own list).
const DEBUG_SECTIONS: &[&str] = &[".debug_line", ".zdebug_line", ".debug_str", ".zdebug_str"];

/// What stripping a tree gave.
#[derive(Debug, Default)]
pub(crate) struct Stripped {
    /// How many ELF files were stripped.
    pub(crate) files: usize,
    /// The debug files by build-id (lowercase hex), each on disk in the scratch directory.
    pub(crate) debug_files: BTreeMap<String, PathBuf>,
    /// Files whose debug information was dropped, because they carry no build-id (paths
    /// in the package).
    pub(crate) without_build_id: Vec<String>,
    /// ELF files left as they were because data is appended to them (paths in the
    /// package).
    pub(crate) with_appended_data: Vec<String>,
}

impl Stripped {
    /// Where a debug file of build-id `build_id` is installed, relative to `/`.
    pub(crate) fn installed_path(build_id: &str) -> String {
        let (first, rest) = build_id.split_at(2.min(build_id.len()));
        format!("usr/lib/debug/.build-id/{first}/{rest}.debug")
    }

    /// Lintian overrides for the files left unstripped because data is appended to them
    /// (a file's pointer in brackets, as lintian writes it).
    pub(crate) fn lintian_overrides(&self) -> Vec<String> {
        self.with_appended_data
            .iter()
            .map(|path| format!("unstripped-binary-or-object [{path}]"))
            .collect()
    }

    /// The Build-Ids field: the build-ids in order, separated by spaces.
    pub(crate) fn build_ids_field(&self) -> String {
        self.debug_files
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What stripping one ELF file gave.
struct FileOutcome {
    /// The build-id and the debug file, when one was written.
    debug: Option<(String, PathBuf)>,
    /// Whether debug information was dropped for want of a build-id.
    missing_build_id: bool,
    /// Whether it is a shared object (not an executable).
    shared_object: bool,
    /// Whether it was left as it was, because data is appended to it.
    appended_data: bool,
}

/// What one ELF file is, read from its headers.
struct ElfFacts {
    /// A shared object rather than an executable (a PIE executable has an interpreter).
    shared_object: bool,
    /// The build-id, hex.
    build_id: Option<String>,
    /// Has debug information: the sections lintian looks for in a debug file (a symbol
    /// table alone would give a debug file lintian calls empty).
    has_debug_info: bool,
    /// Carries bytes after everything its headers describe: data appended to an
    /// executable (pkg, deno compile, bun build --compile, self-extracting archives),
    /// which `strip` would cut off.
    appended_data: bool,
}

/// Strips every ELF executable and shared object among `entries`, pointing each at its
/// stripped copy under `work`, and writes the debug files under `work` too.
pub(crate) fn strip_tree(entries: Vec<&mut Entry>, work: &Path) -> Result<Stripped> {
    let stripped_dir = work.join("stripped");
    let debug_dir = work.join("debug");
    for directory in [&stripped_dir, &debug_dir] {
        fs_err::create_dir_all(directory)?;
    }
    let results = entries
        .into_par_iter()
        .enumerate()
        .map(|(index, entry)| {
            let Content::File { source, .. } = &entry.content else {
                return Ok(None);
            };
            let source = source.clone();
            let is_elf = elf::read_machine(&source)
                .with_context(|| format!("{}: cannot be read", source.display()))?
                .is_some();
            if !is_elf {
                return Ok(None);
            }
            let copy = stripped_dir.join(index.to_string());
            let outcome = strip_file(&source, &copy, &debug_dir.join(index.to_string()))?;
            if outcome.appended_data {
                return Ok(Some((entry.path.clone(), outcome)));
            }
            let size = fs_err::metadata(&copy)?.len();
            entry.content = Content::File { source: copy, size };
            if outcome.shared_object {
                // Debian policy 10.9 (and dh_fixperms): shared libraries are not
                // installed executable (lintian: shared-library-is-executable).
                entry.mode &= !0o111;
            }
            Ok(Some((entry.path.clone(), outcome)))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut stripped = Stripped::default();
    for (path, outcome) in results.into_iter().flatten() {
        if outcome.appended_data {
            stripped.with_appended_data.push(path);
            continue;
        }
        stripped.files += 1;
        match outcome.debug {
            // Two copies of one file have one build-id and the same debug file.
            Some((build_id, debug)) => {
                stripped.debug_files.entry(build_id).or_insert(debug);
            }
            None if outcome.missing_build_id => stripped.without_build_id.push(path),
            None => {}
        }
    }
    stripped.without_build_id.sort();
    stripped.with_appended_data.sort();
    Ok(stripped)
}

/// Strips `source` into `copy`; when it has debug information and a build-id, writes it
/// first into `debug_dir` under the name Debian gives it (`<build-id without its first
/// two digits>.debug`, the name the debug link records) and links the copy to it.
fn strip_file(source: &Path, copy: &Path, debug_dir: &Path) -> Result<FileOutcome> {
    let facts = read_facts(source)?;
    if facts.appended_data {
        return Ok(FileOutcome {
            debug: None,
            missing_build_id: false,
            shared_object: facts.shared_object,
            appended_data: true,
        });
    }
    let debug = match &facts.build_id {
        Some(build_id) if facts.has_debug_info && build_id.len() > 2 => {
            fs_err::create_dir_all(debug_dir)?;
            let debug = debug_dir.join(format!("{}.debug", &build_id[2..]));
            run(Command::new("objcopy")
                .args(["--only-keep-debug", "--compress-debug-sections"])
                .arg(source)
                .arg(&debug))?;
            Some((build_id.clone(), debug))
        }
        _ => None,
    };
    let mut strip = Command::new("strip");
    strip.args(["--remove-section=.comment", "--remove-section=.note"]);
    if facts.shared_object {
        // A shared object keeps the symbols its relocations need.
        strip.arg("--strip-unneeded");
    }
    run(strip.arg("-o").arg(copy).arg(source))?;
    // An ELF file without a build-id has no place in the .build-id tree; one already
    // stripped has nothing to keep.
    if let Some((_, debug)) = &debug {
        let mut link = std::ffi::OsString::from("--add-gnu-debuglink=");
        link.push(debug);
        run(Command::new("objcopy").arg(link).arg(copy))?;
    }
    let missing_build_id = facts.has_debug_info && debug.is_none();
    Ok(FileOutcome {
        debug,
        missing_build_id,
        shared_object: facts.shared_object,
        appended_data: false,
    })
}

/// Reads what stripping needs from an ELF file's headers, by positioned reads of its
/// headers, notes and section names (see [`elf_parts`]): never the whole file, and no
/// memory map, which a file truncated meanwhile would turn into a SIGBUS.
fn read_facts(path: &Path) -> Result<ElfFacts> {
    let cannot_read = || format!("{}: cannot be read", path.display());
    let file = std::fs::File::open(path).with_context(cannot_read)?;
    let error = |error: PartError| match error {
        PartError::Io(error) => anyhow::Error::new(error).context(cannot_read()),
        error => anyhow::anyhow!(
            "{}: has an ELF header but cannot be parsed ({error}); leave it out with \
             [files] exclude, or set [build] strip = false",
            path.display()
        ),
    };
    let parts = ElfParts::of_file(&file).map_err(error)?;
    let shared_object = parts.header.e_type != ET_EXEC
        && !parts
            .program_headers
            .iter()
            .any(|header| header.p_type == PT_INTERP);
    let mut build_id = None;
    for segment in parts
        .program_headers
        .iter()
        .filter(|segment| segment.p_type == PT_NOTE)
    {
        let notes = parts
            .range(segment.p_offset, segment.p_filesz)
            .map_err(error)?;
        let iterator = goblin::elf::note::NoteDataIterator {
            data: &notes,
            size: notes.len(),
            offset: 0,
            ctx: (segment.p_align as usize, parts.ctx),
        };
        for note in iterator.flatten() {
            if note.n_type == NT_GNU_BUILD_ID && note.name == "GNU" {
                build_id = Some(hex::encode(note.desc));
            }
        }
    }
    let names_bytes = parts.section_names().map_err(error)?.unwrap_or_default();
    let names = goblin::strtab::Strtab::parse(&names_bytes, 0, names_bytes.len(), 0)
        .map_err(|parse| error(parse.into()))?;
    let has_debug_info = parts.section_headers.iter().any(|section| {
        names
            .get_at(section.sh_name)
            .is_some_and(|name| DEBUG_SECTIONS.contains(&name))
    });
    // The end of what the headers describe: the section header table, every section
    // with bytes in the file, every segment.
    let header = &parts.header;
    let section_table_end = header
        .e_shoff
        .saturating_add(u64::from(header.e_shnum) * u64::from(header.e_shentsize));
    let described_end = parts
        .section_headers
        .iter()
        .filter(|section| section.sh_type != goblin::elf::section_header::SHT_NOBITS)
        .map(|section| section.sh_offset.saturating_add(section.sh_size))
        .chain(
            parts
                .program_headers
                .iter()
                .map(|segment| segment.p_offset.saturating_add(segment.p_filesz)),
        )
        .chain([section_table_end])
        .max()
        .unwrap_or(0);
    Ok(ElfFacts {
        shared_object,
        build_id,
        has_debug_info,
        appended_data: parts.len > described_end,
    })
}

/// Runs one binutils command; its error names the command and what it printed.
fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let output = command.output().map_err(|error| {
        anyhow::anyhow!(
            "cannot run {shown}: {error}; stripping needs binutils (objcopy, strip) on the \
             build machine, or set [build] strip = false"
        )
    })?;
    if !output.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_files_go_under_the_build_id_tree() {
        assert_eq!(
            Stripped::installed_path("0a1b2c3d"),
            "usr/lib/debug/.build-id/0a/1b2c3d.debug"
        );
        let mut stripped = Stripped::default();
        stripped.debug_files.insert("ff00".into(), PathBuf::new());
        stripped.debug_files.insert("0a11".into(), PathBuf::new());
        assert_eq!(stripped.build_ids_field(), "0a11 ff00");
    }
}
