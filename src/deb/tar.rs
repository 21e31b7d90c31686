//! The tar members of a `.deb`, written as dpkg-deb writes them: GNU format, `./`-prefixed
//! names, directories with a trailing `/`, owner root:root (0:0), a fixed mtime.
//!
//! Headers are filled here by hand and handed to the `tar` crate's `append`: the crate's
//! path setters normalise `./opt/x` to `opt/x`, and its builder would detect sparse files
//! (which `dpkg -i` refuses) and follow symlinks. Long names and link targets get GNU
//! `././@LongLink` records, which dpkg reads.

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

/// The tar block size: headers and file data are padded to it.
const BLOCK: u64 = 512;

/// A deterministic tar writer.
pub(crate) struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    mtime: u64,
}

impl<W: Write> TarWriter<W> {
    /// Starts an archive whose entries all carry `mtime`.
    pub(crate) fn new(inner: W, mtime: u64) -> Self {
        let mut builder = tar::Builder::new(inner);
        builder.follow_symlinks(false);
        builder.sparse(false);
        TarWriter { builder, mtime }
    }

    /// Sets the mtime of the entries appended from now on.
    pub(crate) fn set_mtime(&mut self, mtime: u64) {
        self.mtime = mtime;
    }

    /// Appends a directory; `path` is `./` or `./a/b/`.
    pub(crate) fn directory(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let mut header = self.header(EntryType::Directory, mode, 0);
        self.set_name(&mut header, path, EntryType::GNULongName)?;
        header.set_cksum();
        self.builder.append(&header, io::empty())
    }

    /// Appends a regular file of `size` bytes read from `data`.
    pub(crate) fn file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        data: impl Read,
    ) -> io::Result<()> {
        let mut header = self.header(EntryType::Regular, mode, size);
        self.set_name(&mut header, path, EntryType::GNULongName)?;
        header.set_cksum();
        // The crate's `append` copies through an 8 KiB buffer behind `dyn Write`: a read
        // call per 8 KiB and one more copy. io::copy into the concrete writer reads straight
        // into a BufWriter's buffer instead (`strace -c` of a whole build of the bench
        // tree: 48,885 read calls -> 26,007).
        let out = self.builder.get_mut();
        out.write_all(header.as_bytes())?;
        let copied = io::copy(&mut data.take(size), out)?;
        // Guard against a file that changed size while we read it: the archive would be corrupt.
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: file shrank while it was being archived"),
            ));
        }
        let padding = (BLOCK - size % BLOCK) % BLOCK;
        out.write_all(&[0; BLOCK as usize][..padding as usize])?;
        Ok(())
    }

    /// Appends a symbolic link to `target`.
    pub(crate) fn symlink(&mut self, path: &str, target: &[u8]) -> io::Result<()> {
        let mut header = self.header(EntryType::Symlink, 0o777, 0);
        self.set_name(&mut header, path, EntryType::GNULongName)?;
        if target.len() > 100 {
            self.long_record(EntryType::GNULongLink, target)?;
        }
        let link = &mut header.as_old_mut().linkname;
        let length = target.len().min(link.len());
        link[..length].copy_from_slice(&target[..length]);
        header.set_cksum();
        self.builder.append(&header, io::empty())
    }

    /// Ends the archive (two zero blocks) and gives back the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }

    fn header(&self, kind: EntryType, mode: u32, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime);
        header.set_size(size);
        // Only fail on impossible names: "root" always fits.
        let _ = header.set_username("root");
        let _ = header.set_groupname("root");
        header
    }

    fn set_name(
        &mut self,
        header: &mut Header,
        path: &str,
        long_kind: EntryType,
    ) -> io::Result<()> {
        let bytes = path.as_bytes();
        if bytes.len() > 100 {
            self.long_record(long_kind, bytes)?;
        }
        let name = &mut header.as_old_mut().name;
        let length = bytes.len().min(name.len());
        name[..length].copy_from_slice(&bytes[..length]);
        Ok(())
    }

    /// A GNU long-name (`L`) or long-link (`K`) record that carries the next entry's full name.
    fn long_record(&mut self, kind: EntryType, value: &[u8]) -> io::Result<()> {
        let mut data = value.to_vec();
        data.push(0);
        let mut header = self.header(kind, 0o644, data.len() as u64);
        let name = b"././@LongLink";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_mtime(0);
        header.set_cksum();
        self.builder.append(&header, data.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// File data is copied past the crate: sizes around the block size come back whole,
    /// padded so that the next header is found, and a short file is an error.
    #[test]
    fn files_read_back_whole_and_a_short_file_fails() -> io::Result<()> {
        let sizes = [0usize, 1, 511, 512, 513, 1024, 70_000];
        let mut writer = TarWriter::new(Vec::new(), 1_700_000_000);
        for (index, size) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..*size).map(|byte| (byte % 251) as u8).collect();
            writer.file(&format!("./f{index}"), 0o644, *size as u64, data.as_slice())?;
        }
        let bytes = writer.finish()?;
        assert_eq!(bytes.len() % 512, 0);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut read_sizes = Vec::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            assert!(data
                .iter()
                .enumerate()
                .all(|(at, byte)| *byte == (at % 251) as u8));
            read_sizes.push(data.len());
        }
        assert_eq!(read_sizes, sizes);

        let mut short = TarWriter::new(Vec::new(), 1_700_000_000);
        let error = short
            .file("./short", 0o644, 10, &b"12345"[..])
            .expect_err("five bytes for ten");
        assert!(error.to_string().contains("shrank"), "{error}");
        Ok(())
    }
}
