//! Sizes and digests of files: what a `Packages` paragraph lists for a package (MD5sum,
//! SHA1, SHA256) and what the pool records, computed in one pass while a file is copied.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Size and digests of a file. JSON shows the size and SHA256 only: MD5 and SHA1 are
/// kept for the `Packages` readers that still ask for them, not to identify anything.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Digests {
    /// Size in bytes.
    pub(crate) size: u64,
    /// MD5, hex.
    #[serde(skip)]
    pub md5: String,
    /// SHA1, hex.
    #[serde(skip)]
    pub sha1: String,
    /// SHA256, hex.
    pub sha256: String,
}

impl Digests {
    /// The digests of bytes held in memory (an index file).
    pub(crate) fn of(bytes: &[u8]) -> Digests {
        let (md5, (sha1, sha256)) = rayon::join(
            || hex::encode(Md5::digest(bytes)),
            || {
                rayon::join(
                    || hex::encode(Sha1::digest(bytes)),
                    || hex::encode(Sha256::digest(bytes)),
                )
            },
        );
        Digests {
            size: bytes.len() as u64,
            md5,
            sha1,
            sha256,
        }
    }
}

thread_local! {
    // One copy buffer per thread: a fresh large buffer per file costs an mmap and page
    // faults each time, which dominated adding thousands of small packages.
    static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 128 * 1024]);
}

/// Copies `reader` into `writer` and returns the size and digests of what passed.
pub(crate) fn copy_hashing(reader: impl Read, writer: impl Write) -> io::Result<Digests> {
    BUFFER.with(|buffer| copy_with(reader, writer, &mut buffer.borrow_mut()))
}

fn copy_with(
    mut reader: impl Read,
    mut writer: impl Write,
    buffer: &mut [u8],
) -> io::Result<Digests> {
    let (mut md5, mut sha1, mut sha256) = (Md5::new(), Sha1::new(), Sha256::new());
    let mut size = 0u64;
    loop {
        let read = match reader.read(buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let chunk = &buffer[..read];
        md5.update(chunk);
        sha1.update(chunk);
        sha256.update(chunk);
        writer.write_all(chunk)?;
        size += read as u64;
    }
    writer.flush()?;
    Ok(Digests {
        size,
        md5: hex::encode(md5.finalize()),
        sha1: hex::encode(sha1.finalize()),
        sha256: hex::encode(sha256.finalize()),
    })
}

/// The size and SHA256 (hex) of a file, read in full: a package after writing it, and
/// pool files when the repository checks them.
pub(crate) fn sha256_of(path: &Path) -> io::Result<(u64, String)> {
    // Large reads for a large file (with SHA-NI the hash keeps up with memory, and 8 KiB
    // reads would not); a small buffer for the many small files a repository checks.
    let file = File::open(path)?;
    let capacity = file.metadata()?.len().clamp(8 << 10, 1 << 20) as usize;
    let mut reader = io::BufReader::with_capacity(capacity, file);
    let mut hasher = Sha256::new();
    let size = io::copy(&mut reader, &mut hasher)?;
    Ok((size, hex::encode(hasher.finalize())))
}
