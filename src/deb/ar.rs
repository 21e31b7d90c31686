//! The outer `ar` archive of a `.deb`: `debian-binary`, `control.tar.*`, `data.tar.*`,
//! in that order, each header with mode 0644, owner 0:0 and a fixed mtime.

use std::io::{self, Read, Write};

/// Writes the ar members of a `.deb` one after another.
pub struct ArWriter<W: Write> {
    builder: ar::Builder<W>,
    mtime: u64,
}

impl<W: Write> ArWriter<W> {
    /// Starts an archive whose member headers carry `mtime`.
    pub fn new(inner: W, mtime: u64) -> Self {
        ArWriter {
            builder: ar::Builder::new(inner),
            mtime,
        }
    }

    /// Appends one member of `size` bytes read from `data`.
    pub fn append(&mut self, name: &str, size: u64, data: impl Read) -> io::Result<()> {
        // The ar crate's headers default to mode 0, which some readers refuse: set all fields.
        let mut header = ar::Header::new(name.as_bytes().to_vec(), size);
        header.set_mode(0o100644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime);
        self.builder.append(&header, data)
    }

    /// Ends the archive and gives back the inner writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}
