//! ELF files in a staged tree: their machine (the package's architecture), the sonames
//! they need (`DT_NEEDED`) and the sonames the tree bundles itself.
//!
//! Files are read with `goblin`, never with `ldd`: `ldd` runs the dynamic loader of the
//! build machine, cannot read foreign architectures and resolves against whatever happens
//! to be installed, while what the package needs is written in the files themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use goblin::elf::dynamic::Dynamic;
use goblin::elf::header::{
    EM_386, EM_AARCH64, EM_ARM, EM_MIPS, EM_PPC64, EM_RISCV, EM_S390, EM_X86_64,
};
use goblin::elf::header::{ET_DYN, ET_EXEC};
use goblin::elf::program_header::PT_DYNAMIC;
use goblin::elf::section_header::{SHT_DYNSYM, SHT_GNU_VERNEED, SHT_GNU_VERSYM};
use goblin::elf::sym::Symtab;
use goblin::elf::symver::{VerneedSection, VersymSection};
use goblin::elf::SectionHeader;
use goblin::strtab::Strtab;

use super::elf_parts::{ElfParts, PartError};

/// `e_machine` of LoongArch, missing from goblin's constants.
const EM_LOONGARCH: u16 = 258;
/// The ARM flag of the hard-float ABI (`EF_ARM_ABI_FLOAT_HARD`).
const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;

/// What the ELF files of a tree need and provide.
#[derive(Debug, Default, Clone)]
pub(crate) struct ElfReport {
    /// The Debian architecture of the ELF files (`amd64`), or `None` when there are none.
    pub(crate) architecture: Option<String>,
    /// Sonames needed and not bundled, each with a file (its path in the tree) that needs it.
    pub(crate) needed: Vec<(String, PathBuf)>,
    /// Sonames the tree bundles.
    pub(crate) bundled: BTreeSet<String>,
    /// The machine of the ELF files, to find matching libraries on the build machine.
    pub(crate) machine: Option<Machine>,
    /// What each file that needs an unbundled soname imports, for symbol-level versions.
    pub(crate) imports: Vec<Imports>,
}

/// The machine an ELF file was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Machine {
    /// `e_machine`.
    pub(crate) machine: u16,
    /// ELFCLASS64 rather than ELFCLASS32.
    pub is_64: bool,
    /// Little-endian rather than big-endian.
    pub(crate) little_endian: bool,
    /// `e_flags`, which tell ARM's float ABIs apart.
    pub(crate) flags: u32,
}

impl Machine {
    /// The Debian architecture name, or `None` for a machine Debian does not build for.
    pub(crate) fn debian_architecture(&self) -> Option<&'static str> {
        let name = match (self.machine, self.is_64, self.little_endian) {
            (EM_X86_64, true, _) => "amd64",
            (EM_X86_64, false, _) => "x32",
            (EM_386, false, _) => "i386",
            (EM_AARCH64, true, true) => "arm64",
            (EM_ARM, false, true) if self.flags & EF_ARM_ABI_FLOAT_HARD != 0 => "armhf",
            (EM_ARM, false, true) => "armel",
            (EM_RISCV, true, true) => "riscv64",
            (EM_PPC64, true, true) => "ppc64el",
            (EM_PPC64, true, false) => "ppc64",
            (EM_S390, true, false) => "s390x",
            (EM_MIPS, true, true) => "mips64el",
            (EM_MIPS, false, true) => "mipsel",
            (EM_LOONGARCH, true, true) => "loong64",
            _ => return None,
        };
        Some(name)
    }

    /// The multiarch triplet Debian installs this machine's libraries under.
    pub(crate) fn multiarch_triplet(&self) -> Option<&'static str> {
        let triplet = match self.debian_architecture()? {
            "amd64" => "x86_64-linux-gnu",
            "x32" => "x86_64-linux-gnux32",
            "i386" => "i386-linux-gnu",
            "arm64" => "aarch64-linux-gnu",
            "armhf" => "arm-linux-gnueabihf",
            "armel" => "arm-linux-gnueabi",
            "riscv64" => "riscv64-linux-gnu",
            "ppc64el" => "powerpc64le-linux-gnu",
            "ppc64" => "powerpc64-linux-gnu",
            "s390x" => "s390x-linux-gnu",
            "mips64el" => "mips64el-linux-gnuabi64",
            "mipsel" => "mipsel-linux-gnu",
            "loong64" => "loongarch64-linux-gnu",
            _ => return None,
        };
        Some(triplet)
    }

    /// True when a library of machine `other` can be loaded by a file of this machine.
    pub(crate) fn loads(&self, other: &Machine) -> bool {
        self.machine == other.machine
            && self.is_64 == other.is_64
            && self.little_endian == other.little_endian
            && (self.machine != EM_ARM
                || (self.flags & EF_ARM_ABI_FLOAT_HARD) == (other.flags & EF_ARM_ABI_FLOAT_HARD))
    }
}

/// The dynamic imports of one file.
#[derive(Debug, Clone)]
pub(crate) struct Imports {
    /// Its `DT_NEEDED` sonames that the tree does not bundle, in the file's order.
    pub(crate) sonames: Vec<String>,
    /// Its undefined dynamic symbols as `name@version` (`name@Base` when unversioned).
    pub(crate) symbols: Vec<String>,
}

/// One ELF executable or shared object of the tree, as read: what [`report`] gathers.
#[derive(Debug, Clone)]
pub(crate) struct ElfFile {
    tree_path: String,
    machine: Machine,
    soname: Option<String>,
    needed: Vec<String>,
    symbols: Vec<String>,
}

/// Reads only the header of a file: `Some(machine)` when it is an ELF executable or shared
/// object, `None` for any other file.
pub(crate) fn read_machine(path: &Path) -> std::io::Result<Option<Machine>> {
    read_machine_from(&mut std::fs::File::open(path)?)
}

/// [`read_machine`] on a file already open, read from its current position.
fn read_machine_from(file: &mut std::fs::File) -> std::io::Result<Option<Machine>> {
    let mut header = [0u8; 64];
    let mut filled = 0;
    while filled < header.len() {
        let count = file.read(&mut header[filled..])?;
        if count == 0 {
            break;
        }
        filled += count;
    }
    Ok(machine_of(&header[..filled]))
}

/// The machine in an ELF header (the first bytes of a file), when they are the header of
/// an executable or shared object.
fn machine_of(header: &[u8]) -> Option<Machine> {
    if header.len() < 52 || header[..4] != *b"\x7fELF" {
        return None;
    }
    let is_64 = header[4] == 2;
    let little_endian = header[5] == 1;
    let half = |offset: usize| {
        let bytes = [header[offset], header[offset + 1]];
        if little_endian {
            u16::from_le_bytes(bytes)
        } else {
            u16::from_be_bytes(bytes)
        }
    };
    let flags_offset = if is_64 { 48 } else { 36 };
    let flag_bytes = [
        header[flags_offset],
        header[flags_offset + 1],
        header[flags_offset + 2],
        header[flags_offset + 3],
    ];
    let flags = if little_endian {
        u32::from_le_bytes(flag_bytes)
    } else {
        u32::from_be_bytes(flag_bytes)
    };
    let file_type = half(16);
    if file_type != ET_EXEC && file_type != ET_DYN {
        return None;
    }
    Some(Machine {
        machine: half(18),
        is_64,
        little_endian,
        flags,
    })
}

/// Reads one regular file of the tree (`tree_path` in the tree, `disk_path` on disk) as
/// an ELF file: from `bytes` when its whole content is already in memory, else by
/// positioned reads of the parts the scan needs (its headers, dynamic section, dynamic
/// symbols and their versions; see [`elf_parts`](super::elf_parts)), never the whole
/// file. `None` when it is not an ELF executable or shared object.
pub(crate) fn read_file(
    disk_path: &Path,
    tree_path: &str,
    bytes: Option<&[u8]>,
) -> Result<Option<ElfFile>> {
    if let Some(bytes) = bytes {
        return match machine_of(&bytes[..bytes.len().min(64)]) {
            Some(machine) => {
                let parts =
                    ElfParts::of_memory(bytes).map_err(|error| malformed(tree_path, error))?;
                parse(&parts, machine, tree_path).map(Some)
            }
            None => Ok(None),
        };
    }
    let cannot_read = || format!("{}: cannot be read", disk_path.display());
    // One open serves the header check and the reads of the parts.
    let mut file = std::fs::File::open(disk_path).with_context(cannot_read)?;
    let machine = match read_machine_from(&mut file).with_context(cannot_read)? {
        Some(machine) => machine,
        None => return Ok(None),
    };
    let parts = ElfParts::of_file(&file).map_err(|error| match error {
        PartError::Io(error) => anyhow::Error::new(error).context(cannot_read()),
        error => malformed(tree_path, error),
    })?;
    parse(&parts, machine, tree_path)
        .map_err(|error| match error.downcast_ref::<std::io::Error>() {
            Some(_) => error.context(cannot_read()),
            None => error,
        })
        .map(Some)
}

fn malformed(tree_path: &str, error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "{tree_path}: has an ELF header but cannot be parsed ({error}); \
         if it is test data, leave it out with [files] exclude"
    )
}

/// Parses the dynamic part of an ELF file whose header gave `machine`: its soname, the
/// sonames it needs, and its undefined dynamic symbols with their versions.
fn parse(parts: &ElfParts, machine: Machine, tree_path: &str) -> Result<ElfFile> {
    let part_error = |error: PartError| match error {
        PartError::Io(error) => anyhow::Error::new(error),
        error => malformed(tree_path, error),
    };
    let goblin_error = |error: goblin::error::Error| malformed(tree_path, error);
    let mut file = ElfFile {
        tree_path: tree_path.to_string(),
        machine,
        soname: None,
        needed: Vec::new(),
        symbols: Vec::new(),
    };
    let Some(dynamic_segment) = parts
        .program_headers
        .iter()
        .position(|header| header.p_type == PT_DYNAMIC)
    else {
        // A static executable: it needs nothing.
        return Ok(file);
    };
    let segment = &parts.program_headers[dynamic_segment];
    let dynamic_bytes = parts
        .range(segment.p_offset, segment.p_filesz)
        .map_err(part_error)?;
    // goblin reads the dynamic section at its segment's offset, and maps the addresses in
    // it to file offsets with the loadable segments: the segment is moved to offset 0 of
    // the bytes read, the others are left as they are.
    let mut headers = parts.program_headers.clone();
    headers[dynamic_segment].p_offset = 0;
    let Some(dynamic) =
        Dynamic::parse(&dynamic_bytes, &headers, parts.ctx).map_err(goblin_error)?
    else {
        return Ok(file);
    };
    let info = &dynamic.info;
    let strings_bytes = parts
        .range(info.strtab as u64, info.strsz as u64)
        .map_err(part_error)?;
    let strings = Strtab::parse(&strings_bytes, 0, strings_bytes.len(), 0).map_err(goblin_error)?;
    if info.soname != 0 {
        file.soname = strings.get_at(info.soname).map(str::to_string);
    }
    file.needed = dynamic
        .get_libraries(&strings)
        .into_iter()
        .map(str::to_string)
        .collect();

    // The dynamic symbols, counted by their section. A file without section headers
    // (sstrip) is rare enough to be read whole and parsed as goblin parses it.
    let Some((symbols_header, symbols_bytes)) = parts.section(SHT_DYNSYM).map_err(part_error)?
    else {
        if parts.section_headers.is_empty() {
            let whole = parts.range(0, parts.len).map_err(part_error)?;
            let elf = goblin::elf::Elf::parse(&whole).map_err(goblin_error)?;
            file.symbols = undefined_symbols(
                &elf.dynsyms,
                &elf.dynstrtab,
                elf.versym.as_ref(),
                elf.verneed.as_ref(),
            );
        }
        return Ok(file);
    };
    let count = match symbols_header.sh_entsize {
        0 => 0,
        size => (symbols_header.sh_size / size) as usize,
    };
    let symbols = Symtab::parse(&symbols_bytes, 0, count, parts.ctx).map_err(goblin_error)?;
    // goblin finds the version sections in the section headers: each is read alone and
    // handed over with its header moved to offset 0.
    let moved = |header: &SectionHeader| {
        let mut header = header.clone();
        header.sh_offset = 0;
        [header]
    };
    let versym_part = parts.section(SHT_GNU_VERSYM).map_err(part_error)?;
    let versym = match &versym_part {
        Some((header, bytes)) => {
            VersymSection::parse(bytes, &moved(header), parts.ctx).map_err(goblin_error)?
        }
        None => None,
    };
    let verneed_part = parts.section(SHT_GNU_VERNEED).map_err(part_error)?;
    let verneed = match &verneed_part {
        Some((header, bytes)) => {
            VerneedSection::parse(bytes, &moved(header), parts.ctx).map_err(goblin_error)?
        }
        None => None,
    };
    file.symbols = undefined_symbols(&symbols, &strings, versym.as_ref(), verneed.as_ref());
    Ok(file)
}

/// The undefined dynamic symbols as `name@version` (`name@Base` when unversioned).
fn undefined_symbols(
    symbols: &Symtab,
    strings: &Strtab,
    versym: Option<&VersymSection>,
    verneed: Option<&VerneedSection>,
) -> Vec<String> {
    // Version names of the undefined symbols, by version index (from .gnu.version_r).
    let mut version_names: BTreeMap<u16, &str> = BTreeMap::new();
    if let Some(verneed) = verneed {
        for need in verneed.iter() {
            for aux in need.iter() {
                if let Some(name) = strings.get_at(aux.vna_name) {
                    version_names.insert(aux.vna_other, name);
                }
            }
        }
    }
    let mut undefined = Vec::new();
    for (index, symbol) in symbols.iter().enumerate() {
        if symbol.st_shndx != 0 || symbol.st_name == 0 {
            continue;
        }
        let Some(name) = strings.get_at(symbol.st_name) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let version = versym
            .and_then(|versym| versym.get_at(index))
            .and_then(|versym| version_names.get(&versym.version()).copied())
            .unwrap_or("Base");
        undefined.push(format!("{name}@{version}"));
    }
    undefined
}

/// What the ELF files of a tree need and provide: `elves` are its ELF files, `links` its
/// symbolic links (path in the tree, target).
///
/// A needed soname counts as bundled when any shared object of the tree has it as its
/// `DT_SONAME` or its file name (this covers manylinux `*.libs/` directories and libraries
/// found through `$ORIGIN` run paths), or when a symbolic link of the tree has that name
/// and leads, by relative targets that stay inside the tree, to one of its ELF files. A
/// link to the build machine's own library (`/usr/lib/...`) bundles nothing: the package
/// still needs the library's package.
pub(crate) fn report(mut elves: Vec<ElfFile>, links: &[(String, PathBuf)]) -> Result<ElfReport> {
    elves.sort_by(|left, right| left.tree_path.cmp(&right.tree_path));

    let mut report = ElfReport::default();
    let mut first: Option<(&ElfFile, &'static str)> = None;
    for elf in &elves {
        let Some(architecture) = elf.machine.debian_architecture() else {
            bail!(
                "{}: ELF machine {} (class {}, {}) has no Debian architecture",
                elf.tree_path,
                elf.machine.machine,
                if elf.machine.is_64 { 64 } else { 32 },
                if elf.machine.little_endian {
                    "little-endian"
                } else {
                    "big-endian"
                }
            );
        };
        match first {
            None => first = Some((elf, architecture)),
            Some((other, other_architecture)) if other_architecture != architecture => bail!(
                "the tree mixes architectures: {} is {other_architecture}, {} is {architecture}; \
                 a package has one architecture (leave the other files out with [files] exclude)",
                other.tree_path,
                elf.tree_path
            ),
            Some(_) => {}
        }
    }
    if let Some((elf, architecture)) = first {
        report.architecture = Some(architecture.to_string());
        report.machine = Some(elf.machine);
    }

    for elf in &elves {
        if let Some(soname) = &elf.soname {
            report.bundled.insert(soname.clone());
        }
        if let Some(name) = Path::new(&elf.tree_path).file_name() {
            report.bundled.insert(name.to_string_lossy().into_owned());
        }
    }
    let targets: BTreeMap<&str, &Path> = links
        .iter()
        .map(|(path, target)| (path.as_str(), target.as_path()))
        .collect();
    let elf_paths: BTreeSet<&str> = elves.iter().map(|elf| elf.tree_path.as_str()).collect();
    for (link, _) in links {
        let Some(name) = Path::new(link).file_name() else {
            continue;
        };
        let name = name.to_string_lossy();
        if name.contains(".so") && leads_to_elf(link, &targets, &elf_paths) {
            report.bundled.insert(name.into_owned());
        }
    }

    let mut needed: BTreeMap<String, PathBuf> = BTreeMap::new();
    for elf in elves {
        let sonames: Vec<String> = elf
            .needed
            .iter()
            .filter(|soname| !report.bundled.contains(*soname))
            .cloned()
            .collect();
        if sonames.is_empty() {
            continue;
        }
        for soname in &sonames {
            needed
                .entry(soname.clone())
                .or_insert_with(|| PathBuf::from(&elf.tree_path));
        }
        report.imports.push(Imports {
            sonames,
            symbols: elf.symbols,
        });
    }
    report.needed = needed.into_iter().collect();
    Ok(report)
}

/// Whether the link at `link` leads, through links of the tree (`targets`), to one of its
/// ELF files. Targets are resolved by their text, as paths inside the tree: an absolute
/// target, or one that climbs out of the tree, leads nowhere in it.
fn leads_to_elf(link: &str, targets: &BTreeMap<&str, &Path>, elf_paths: &BTreeSet<&str>) -> bool {
    let mut current = link.to_string();
    // A loop of links, or a chain longer than the kernel follows (40), leads nowhere.
    for _ in 0..40 {
        let Some(target) = targets.get(current.as_str()) else {
            return elf_paths.contains(current.as_str());
        };
        match resolve_in_tree(&current, target) {
            Some(next) => current = next,
            None => return false,
        }
    }
    false
}

/// The path in the tree that a link at `link` with the relative `target` names, or `None`
/// when the target is absolute or climbs out of the tree.
fn resolve_in_tree(link: &str, target: &Path) -> Option<String> {
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for component in target.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                parts.pop()?;
            }
            std::path::Component::Normal(name) => parts.push(name.to_str()?),
            std::path::Component::RootDir | std::path::Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_the_tree_only() {
        let resolve = |link: &str, target: &str| resolve_in_tree(link, Path::new(target));
        assert_eq!(
            resolve("lib/libz.so.1", "libz.so.1.3"),
            Some("lib/libz.so.1.3".into())
        );
        assert_eq!(
            resolve("lib/a/libz.so.1", "../b/./libz.so"),
            Some("lib/b/libz.so".into())
        );
        assert_eq!(resolve("libz.so.1", "../libz.so"), None);
        assert_eq!(resolve("lib/libz.so.1", "/usr/lib/libz.so.1"), None);

        let targets: BTreeMap<&str, &Path> = [
            ("lib/libz.so.1", Path::new("libz.so.1.3")),
            ("lib/libz.so.1.3", Path::new("real/libz.so.1.3.1")),
            ("lib/loop.so", Path::new("loop.so")),
            ("lib/system.so.3", Path::new("/usr/lib/system.so.3")),
        ]
        .into_iter()
        .collect();
        let elf_paths: BTreeSet<&str> = ["lib/real/libz.so.1.3.1"].into_iter().collect();
        assert!(leads_to_elf("lib/libz.so.1", &targets, &elf_paths));
        assert!(!leads_to_elf("lib/loop.so", &targets, &elf_paths));
        assert!(!leads_to_elf("lib/system.so.3", &targets, &elf_paths));
    }

    #[test]
    fn architectures_and_triplets() {
        let machine = |machine, is_64, little_endian, flags| Machine {
            machine,
            is_64,
            little_endian,
            flags,
        };
        let amd64 = machine(EM_X86_64, true, true, 0);
        assert_eq!(amd64.debian_architecture(), Some("amd64"));
        assert_eq!(amd64.multiarch_triplet(), Some("x86_64-linux-gnu"));
        assert_eq!(
            machine(EM_AARCH64, true, true, 0).debian_architecture(),
            Some("arm64")
        );
        let armhf = machine(EM_ARM, false, true, EF_ARM_ABI_FLOAT_HARD);
        let armel = machine(EM_ARM, false, true, 0);
        assert_eq!(armhf.debian_architecture(), Some("armhf"));
        assert_eq!(armel.debian_architecture(), Some("armel"));
        assert!(!armhf.loads(&armel));
        assert!(!amd64.loads(&machine(EM_386, false, true, 0)));
        assert_eq!(machine(0x1234, true, true, 0).debian_architecture(), None);
    }

    use crate::build::depends::fixture::{host_architecture, Fixture};

    #[test]
    fn the_build_finds_architecture_needed_and_bundled() {
        let fixture = Fixture::new();
        std::fs::write(fixture.path("tree/README"), "not an ELF file\n").expect("write");
        let files = ["tree/bin/exe", "tree/lib/libfoo.so.1", "tree/README"];
        let report = fixture.inspect(&files).expect("inspect");
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
        // A file too large for the md5 pass to hold is read from disk, to the same report.
        let from_disk = fixture.inspect_from_disk(&files).expect("inspect");
        assert_eq!(format!("{from_disk:?}"), format!("{report:?}"));

        // Without the bundled library in the tree, libfoo is needed from the system.
        let report = fixture.inspect(&["tree/bin/exe"]).expect("inspect");
        assert!(report
            .needed
            .iter()
            .any(|(soname, _)| soname == "libfoo.so.1"));

        // A tree of text files has no architecture and needs nothing.
        let report = fixture.inspect(&["tree/README"]).expect("inspect");
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
        let files = ["tree/bin/exe", "tree/lib/libother.so"];
        for error in [
            fixture
                .inspect(&files)
                .expect_err("mixed architectures fail"),
            fixture
                .inspect_from_disk(&files)
                .expect_err("mixed architectures fail"),
        ] {
            let message = format!("{error:#}");
            assert!(message.contains("bin/exe"), "{message}");
            assert!(message.contains("lib/libother.so"), "{message}");
            assert!(message.contains(&host_architecture()), "{message}");
        }
    }
}
