//! One entry of `data.tar` and what it holds: the unit the tree listing, the md5sums and
//! the tar writer share.

use std::path::PathBuf;

/// What one entry of `data.tar` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// A directory.
    Directory,
    /// A regular file copied from disk, with its size when it was listed.
    File {
        /// Where the bytes are read from.
        source: PathBuf,
        /// The size in bytes.
        size: u64,
    },
    /// A regular file whose bytes are given.
    Bytes(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
}

/// One entry of the data archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The installed path without a leading `/` (`opt/shop/1.4.2/bin/shop`).
    pub(crate) path: String,
    /// Permission bits.
    pub(crate) mode: u32,
    /// The modification time on disk; clamped to the package's mtime, which it takes when unset.
    pub(crate) mtime: Option<u64>,
    /// What it holds.
    pub(crate) content: Content,
}

impl Entry {
    /// The bytes of a regular file's content; `None` for a directory or a link.
    pub(crate) fn file_size(&self) -> Option<u64> {
        match &self.content {
            Content::File { size, .. } => Some(*size),
            Content::Bytes(bytes) => Some(bytes.len() as u64),
            Content::Directory | Content::Symlink(_) => None,
        }
    }

    /// A regular file with the given bytes.
    pub(crate) fn bytes(path: impl Into<String>, mode: u32, bytes: impl Into<Vec<u8>>) -> Self {
        Entry {
            path: path.into(),
            mode,
            mtime: None,
            content: Content::Bytes(bytes.into()),
        }
    }
}
