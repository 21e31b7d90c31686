//! The MD5 of every regular file of a package, for the `md5sums` control member.
//!
//! After compression, MD5 is the largest cost of a build, and one MD5 stream cannot be
//! sped up: each 64-byte block depends on the one before. `md5-many` hashes independent
//! messages side by side in SIMD lanes (eight per AVX2 register). Files are sorted by
//! size and hashed in batches, so that the messages of a batch have similar lengths and
//! the lanes stay full (bench/NOTES.md has the measurements). The crate is young (0.1
//! alpha), so its version is pinned and the tests check its digests against `md-5`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::entry::{Content, Entry};

/// How many bytes of files one batch reads into memory (per thread).
const BATCH_BYTES: u64 = 16 << 20;
/// How many files one batch holds at most, so that many small files spread over threads.
const BATCH_FILES: usize = 256;
/// Files larger than this are hashed as a stream, in chunks, rather than read whole.
const STREAM_ABOVE: u64 = 16 << 20;
/// The read size for streamed files.
const CHUNK: usize = 1 << 20;

/// MD5 digests (lowercase hex) of regular files, by the path they are archived under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileDigests(HashMap<String, String>);

impl FileDigests {
    /// The digest of the file archived under `path`, when it has been computed.
    pub(crate) fn get(&self, path: &str) -> Option<&str> {
        self.0.get(path).map(String::as_str)
    }

    /// Adds the digests of `other`.
    pub(crate) fn extend(&mut self, other: FileDigests) {
        self.0.extend(other.0);
    }
}

thread_local! {
    /// The batch buffer of each thread, kept for the next batch: fresh memory would cost a
    /// page fault and a page clearing every 4 KiB.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A regular file to hash.
struct Job<'a> {
    path: &'a str,
    source: Source<'a>,
    size: u64,
}

enum Source<'a> {
    Disk(&'a Path),
    Memory(&'a [u8]),
}

/// A file on disk as the md5 pass sees it, for [`digest_and_inspect`]'s inspector.
pub(crate) struct FileSeen<'a> {
    /// The path it is archived under.
    pub(crate) path: &'a str,
    /// Where it is read from.
    pub(crate) source: &'a Path,
    /// Its whole content when the pass holds it in memory; `None` for a large file, which
    /// is hashed as a stream.
    pub(crate) bytes: Option<&'a [u8]>,
}

/// Hashes every regular file among `entries` (read from disk, or given as bytes), on
/// every core. A file whose size differs from the one listed is an error: the package
/// would not match its md5sums.
pub(crate) fn digest_entries(entries: &[Entry]) -> Result<FileDigests> {
    digest_and_inspect(entries, |_| Ok(None::<()>)).map(|(digests, _)| digests)
}

/// [`digest_entries`], and `inspect` looks at each file read from disk while the pass
/// has it at hand, so that a second look at the tree needs no second read; what it
/// returns is collected (in no particular order).
pub(crate) fn digest_and_inspect<T, F>(
    entries: &[Entry],
    inspect: F,
) -> Result<(FileDigests, Vec<T>)>
where
    T: Send,
    F: Fn(&FileSeen) -> Result<Option<T>> + Sync,
{
    let mut jobs: Vec<Job> = entries
        .iter()
        .filter_map(|entry| match &entry.content {
            Content::File { source, size } => Some(Job {
                path: &entry.path,
                source: Source::Disk(source),
                size: *size,
            }),
            Content::Bytes(bytes) => Some(Job {
                path: &entry.path,
                source: Source::Memory(bytes),
                size: bytes.len() as u64,
            }),
            Content::Directory | Content::Symlink(_) => None,
        })
        .collect();
    // Similar lengths side by side keep the SIMD lanes of a batch busy.
    jobs.sort_by_key(|job| job.size);
    let (streamed, batched): (Vec<Job>, Vec<Job>) =
        jobs.into_iter().partition(|job| job.size > STREAM_ABOVE);
    let mut batches: Vec<&[Job]> = Vec::new();
    let mut rest = batched.as_slice();
    while !rest.is_empty() {
        let mut bytes = 0;
        let mut count = 0;
        while count < rest.len()
            && (count == 0 || (bytes + rest[count].size <= BATCH_BYTES && count < BATCH_FILES))
        {
            bytes += rest[count].size;
            count += 1;
        }
        let (batch, remaining) = rest.split_at(count);
        batches.push(batch);
        rest = remaining;
    }

    let from_batches: Vec<Result<Digested<T>>> = batches
        .par_iter()
        .map(|batch| {
            // Taken out of the thread's slot rather than borrowed in it: if `inspect` itself
            // uses rayon, this thread may run another batch meanwhile, which then simply
            // starts with an empty buffer.
            let mut buffer = BUFFER.take();
            let digested = digest_batch(batch, &mut buffer, &inspect);
            BUFFER.set(buffer);
            digested
        })
        .collect();
    let from_streams = streamed
        .par_iter()
        .map(|job| {
            let digest = digest_stream(job)?;
            let seen = match job.source {
                Source::Disk(source) => inspect(&FileSeen {
                    path: job.path,
                    source,
                    bytes: None,
                })?,
                Source::Memory(_) => None,
            };
            Ok((vec![(job.path.to_string(), digest)], Vec::from_iter(seen)))
        })
        .collect::<Vec<Result<Digested<T>>>>();
    // The batch buffers (up to BATCH_BYTES per thread) are given back before the
    // package is compressed: kept, they would add to the compressor's peak memory.
    rayon::broadcast(|_| drop(BUFFER.take()));
    let mut digests = HashMap::new();
    let mut seen = Vec::new();
    // The first error in the order of the batches (by size, then tree order), whichever
    // thread met it first: the same input gives the same message.
    for digested in from_batches.into_iter().chain(from_streams) {
        let (batch_digests, batch_seen) = digested?;
        digests.extend(batch_digests);
        seen.extend(batch_seen);
    }
    Ok((FileDigests(digests), seen))
}

/// Digests (archive path, hex MD5) of some files, and what the inspector made of them.
type Digested<T> = (Vec<(String, String)>, Vec<T>);

/// Reads a batch of small files into `buffer` (reused from batch to batch, so that its
/// pages are touched once) and hashes them together.
fn digest_batch<T>(
    batch: &[Job],
    buffer: &mut Vec<u8>,
    inspect: &impl Fn(&FileSeen) -> Result<Option<T>>,
) -> Result<Digested<T>> {
    let on_disk: u64 = batch
        .iter()
        .filter(|job| matches!(job.source, Source::Disk(_)))
        .map(|job| job.size)
        .sum();
    // Only growth is zeroed: the bytes from the last batch are overwritten by the reads,
    // and clearing the whole buffer per batch was a measurable cost.
    if buffer.len() < on_disk as usize {
        buffer.resize(on_disk as usize, 0);
    }
    let mut ranges = Vec::with_capacity(batch.len());
    let mut start = 0;
    for job in batch {
        let Source::Disk(source) = job.source else {
            ranges.push(0..0);
            continue;
        };
        let mut file = fs_err::File::open(source)?;
        // Exactly the listed size, in as few reads as the kernel allows (one, for a small
        // file): a file that grew is caught by the archive writer, which reads the listed
        // size and then checks it got it.
        let end = start + job.size as usize;
        let mut filled = start;
        while filled < end {
            match file.read(&mut buffer[filled..end]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("{}: cannot be read", source.display()))
                }
            }
        }
        check_size(source, job.size, (filled - start) as u64)?;
        ranges.push(start..end);
        start = end;
    }
    let inputs: Vec<&[u8]> = batch
        .iter()
        .zip(ranges)
        .map(|(job, range)| match job.source {
            Source::Disk(_) => &buffer[range],
            Source::Memory(bytes) => bytes,
        })
        .collect();
    let mut digests = vec![[0u8; 16]; inputs.len()];
    md5_many::md5_many(&inputs, &mut digests);
    let mut seen = Vec::new();
    for (job, bytes) in batch.iter().zip(&inputs) {
        if let Source::Disk(source) = job.source {
            seen.extend(inspect(&FileSeen {
                path: job.path,
                source,
                bytes: Some(bytes),
            })?);
        }
    }
    let digests = batch
        .iter()
        .zip(digests)
        .map(|(job, digest)| (job.path.to_string(), hex::encode(digest)))
        .collect();
    Ok((digests, seen))
}

/// Hashes one large file in chunks, without holding it in memory.
fn digest_stream(job: &Job) -> Result<String> {
    let source = match job.source {
        Source::Memory(bytes) => return Ok(hex::encode(md5_many::md5(bytes))),
        Source::Disk(source) => source,
    };
    let mut file = fs_err::File::open(source)?;
    let mut state = md5_many::Md5State::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(error).with_context(|| format!("{}: cannot be read", source.display()))
            }
        };
        state.update(&buffer[..read]);
        total += read as u64;
    }
    check_size(source, job.size, total)?;
    Ok(hex::encode(state.finalize()))
}

fn check_size(source: &Path, listed: u64, read: u64) -> Result<()> {
    if listed != read {
        bail!(
            "{}: changed while the package was being built ({listed} bytes when listed, {read} bytes now)",
            source.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    fn reference(bytes: &[u8]) -> String {
        hex::encode(md5::Md5::digest(bytes))
    }

    #[test]
    fn digests_match_md5_for_every_length_around_the_block_size() -> Result<()> {
        // Lengths 0..=300 cross the 55/56/64-byte padding cases several times over, and a
        // batch of mixed lengths exercises the lanes that finish early.
        let contents: Vec<Vec<u8>> = (0..=300u32)
            .map(|length| (0..length).map(|byte| (byte * 31 + length) as u8).collect())
            .collect();
        let entries: Vec<Entry> = contents
            .iter()
            .enumerate()
            .map(|(index, bytes)| Entry::bytes(format!("f{index}"), 0o644, bytes.clone()))
            .collect();
        let digests = digest_entries(&entries)?;
        for (index, bytes) in contents.iter().enumerate() {
            assert_eq!(
                digests.get(&format!("f{index}")),
                Some(reference(bytes).as_str()),
                "length {}",
                bytes.len()
            );
        }
        Ok(())
    }

    #[test]
    fn files_on_disk_are_read_batched_or_streamed_and_a_shrunk_file_is_an_error() -> Result<()> {
        let directory = tempfile::tempdir()?;
        let small = directory.path().join("small");
        let large = directory.path().join("large");
        std::fs::write(&small, b"hello\n")?;
        let large_bytes: Vec<u8> = (0..STREAM_ABOVE + 77)
            .map(|index| (index % 251) as u8)
            .collect();
        std::fs::write(&large, &large_bytes)?;
        let entry = |path: &str, source: &Path, size: u64| Entry {
            path: path.to_string(),
            mode: 0o644,
            mtime: None,
            content: Content::File {
                source: source.to_path_buf(),
                size,
            },
        };
        let digests = digest_entries(&[
            entry("small", &small, 6),
            entry("large", &large, large_bytes.len() as u64),
        ])?;
        assert_eq!(digests.get("small"), Some(reference(b"hello\n").as_str()));
        assert_eq!(digests.get("large"), Some(reference(&large_bytes).as_str()));

        // The inspector sees each file on disk once: a small one with its bytes, a large
        // one (streamed) without; bytes given in memory are not shown to it.
        let (again, mut seen) = digest_and_inspect(
            &[
                entry("small", &small, 6),
                entry("large", &large, large_bytes.len() as u64),
                Entry::bytes("memory", 0o644, b"in memory".to_vec()),
            ],
            |file| {
                Ok(Some((
                    file.path.to_string(),
                    file.bytes.map(<[u8]>::to_vec),
                )))
            },
        )?;
        seen.sort();
        assert_eq!(
            seen,
            [
                ("large".to_string(), None),
                ("small".to_string(), Some(b"hello\n".to_vec()))
            ]
        );
        assert_eq!(again.get("memory"), Some(reference(b"in memory").as_str()));

        match digest_entries(&[entry("small", &small, 7)]) {
            Ok(_) => panic!("a file of 6 bytes listed as 7 was hashed"),
            Err(error) => assert!(
                format!("{error:#}").contains("changed while the package was being built"),
                "{error:#}"
            ),
        }
        Ok(())
    }
}
