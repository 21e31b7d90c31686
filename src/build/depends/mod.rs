//! What the staged tree needs from the system: the sonames its ELF files need
//! ([`elf`]), mapped to the Debian packages that provide them ([`shlibs`]) through dpkg's
//! database ([`dpkg_owners`]).

pub(crate) mod dpkg_owners;
pub(crate) mod elf;
pub(crate) mod elf_parts;
#[cfg(test)]
mod fixture;
pub(crate) mod shlibs;
