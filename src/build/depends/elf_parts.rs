//! The parts of an ELF file that dependency detection and stripping look at (the file
//! header, the program and section headers, the dynamic section and what it points to,
//! the notes), read by positioned reads of exactly those byte ranges.
//!
//! Why not the whole file: an ELF file of a release is often tens of megabytes of code
//! and debug information, and the build needs a few kilobytes of it. Why not a memory
//! map: a file truncated while it is mapped kills the process with SIGBUS instead of
//! giving an error, and no measurement showed mapping to be faster than reading these few
//! ranges (the dynamic scan of the build bench tree touches a few pages per file either
//! way). A file that changes while it is read gives an error or a report of the bytes
//! that were read; the md5 pass and the archive writer catch the change.

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;

use goblin::container::{Container, Ctx};
use goblin::elf::{Header, ProgramHeader, SectionHeader};

/// Why an ELF file could not be read: the file failed (I/O), or its headers do not
/// describe a file that can be parsed.
#[derive(Debug)]
pub(crate) enum PartError {
    /// Reading failed.
    Io(std::io::Error),
    /// The headers or tables are malformed (out of the file, impossible sizes).
    Malformed(String),
}

impl std::fmt::Display for PartError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartError::Io(error) => write!(formatter, "{error}"),
            PartError::Malformed(message) => write!(formatter, "{message}"),
        }
    }
}

impl From<goblin::error::Error> for PartError {
    fn from(error: goblin::error::Error) -> Self {
        PartError::Malformed(error.to_string())
    }
}

/// Where the bytes come from: memory the caller already holds, or an open file.
#[derive(Clone, Copy)]
enum Bytes<'a> {
    Memory(&'a [u8]),
    File(&'a File),
}

/// A section's header and its bytes.
pub(crate) type Section<'header, 'bytes> = (&'header SectionHeader, Cow<'bytes, [u8]>);

/// An ELF file's headers, and positioned reads of its other parts.
pub(crate) struct ElfParts<'a> {
    bytes: Bytes<'a>,
    /// The file's length in bytes.
    pub(crate) len: u64,
    /// The file header.
    pub(crate) header: Header,
    /// Class and byte order, for goblin's parsers.
    pub(crate) ctx: Ctx,
    /// The program headers (segments).
    pub(crate) program_headers: Vec<ProgramHeader>,
    /// The section headers (none in a file stripped of them).
    pub(crate) section_headers: Vec<SectionHeader>,
}

impl<'a> ElfParts<'a> {
    /// The headers of the ELF file held in `bytes`.
    pub(crate) fn of_memory(bytes: &'a [u8]) -> Result<Self, PartError> {
        Self::read(Bytes::Memory(bytes), bytes.len() as u64)
    }

    /// The headers of the open ELF file `file`, read from it.
    pub(crate) fn of_file(file: &'a File) -> Result<Self, PartError> {
        let len = file.metadata().map_err(PartError::Io)?.len();
        Self::read(Bytes::File(file), len)
    }

    fn read(bytes: Bytes<'a>, len: u64) -> Result<Self, PartError> {
        let first = range_of(bytes, len, 0, 64.min(len))?;
        let header = goblin::elf::Elf::parse_header(&first)?;
        let container = header.container()?;
        let mut parts = ElfParts {
            bytes,
            len,
            header,
            ctx: Ctx::new(container, header.endianness()?),
            program_headers: Vec::new(),
            section_headers: Vec::new(),
        };
        let (phdr_size, shdr_size) = match container {
            Container::Big => (56u64, 64u64),
            Container::Little => (32, 40),
        };
        let program_table = parts.range(header.e_phoff, u64::from(header.e_phnum) * phdr_size)?;
        parts.program_headers =
            ProgramHeader::parse(&program_table, 0, usize::from(header.e_phnum), parts.ctx)?;
        // `parse_from`, not `parse`: goblin's `parse` takes offset 0 for "no section
        // headers" and gives none, and the table read here starts at 0.
        // e_shnum 0 with a section table means the count is in the first header's
        // sh_size (SHN_XINDEX); such files are left without sections here, as a file
        // stripped of its section headers is.
        if header.e_shoff != 0 && header.e_shnum != 0 {
            let section_table =
                parts.range(header.e_shoff, u64::from(header.e_shnum) * shdr_size)?;
            parts.section_headers = SectionHeader::parse_from(
                &section_table,
                0,
                usize::from(header.e_shnum),
                parts.ctx,
            )?;
        }
        Ok(parts)
    }

    /// `size` bytes at `offset`; an error when the range lies outside the file.
    pub(crate) fn range(&self, offset: u64, size: u64) -> Result<Cow<'a, [u8]>, PartError> {
        range_of(self.bytes, self.len, offset, size)
    }

    /// The bytes of the first section of type `kind`, with its header; `None` when the file
    /// has no such section (or no section headers). A section without bytes in the file
    /// (`SHT_NOBITS`) gives none.
    pub(crate) fn section(&self, kind: u32) -> Result<Option<Section<'_, 'a>>, PartError> {
        let Some(section) = self
            .section_headers
            .iter()
            .find(|section| section.sh_type == kind)
        else {
            return Ok(None);
        };
        if section.sh_type == goblin::elf::section_header::SHT_NOBITS {
            return Ok(None);
        }
        Ok(Some((
            section,
            self.range(section.sh_offset, section.sh_size)?,
        )))
    }

    /// The bytes of the section name table (`e_shstrndx`); `None` when the file has none.
    pub(crate) fn section_names(&self) -> Result<Option<Cow<'a, [u8]>>, PartError> {
        let index = usize::from(self.header.e_shstrndx);
        match self.section_headers.get(index) {
            Some(names) if names.sh_type != goblin::elf::section_header::SHT_NOBITS => {
                Ok(Some(self.range(names.sh_offset, names.sh_size)?))
            }
            _ => Ok(None),
        }
    }
}

/// `size` bytes at `offset` of a file of `len` bytes; an error when the range lies
/// outside it.
fn range_of<'a>(
    bytes: Bytes<'a>,
    len: u64,
    offset: u64,
    size: u64,
) -> Result<Cow<'a, [u8]>, PartError> {
    let end = offset
        .checked_add(size)
        .filter(|end| *end <= len)
        .ok_or_else(|| {
            PartError::Malformed(format!(
                "{size} bytes at offset {offset} lie outside the file of {len} bytes"
            ))
        })?;
    match bytes {
        Bytes::Memory(bytes) => Ok(Cow::Borrowed(&bytes[offset as usize..end as usize])),
        Bytes::File(file) => {
            let mut buffer = vec![0u8; size as usize];
            file.read_exact_at(&mut buffer, offset)
                .map_err(PartError::Io)?;
            Ok(Cow::Owned(buffer))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_read_from_disk_gives_the_headers_it_gives_from_memory() {
        let executable = std::env::current_exe().expect("the test binary");
        let bytes = std::fs::read(&executable).expect("read");
        let file = File::open(&executable).expect("open");
        let from_memory = ElfParts::of_memory(&bytes).expect("parse");
        let from_disk = ElfParts::of_file(&file).expect("parse");
        assert_eq!(from_memory.header, from_disk.header);
        assert_eq!(from_memory.program_headers, from_disk.program_headers);
        assert_eq!(from_memory.section_headers, from_disk.section_headers);
        // The same headers goblin's whole-file parse finds, section names included.
        let whole = goblin::elf::Elf::parse(&bytes).expect("goblin parses the test binary");
        assert!(!whole.section_headers.is_empty());
        assert_eq!(from_disk.section_headers, whole.section_headers);
        assert_eq!(from_disk.program_headers, whole.program_headers);
        let names = from_disk
            .section_names()
            .expect("read")
            .expect("a name table");
        assert!(
            names.windows(6).any(|window| window == b".text\0"),
            "no .text in the section names"
        );
        assert!(from_disk.range(from_disk.len - 1, 2).is_err());
        assert!(from_disk.range(u64::MAX, 2).is_err());
    }
}
