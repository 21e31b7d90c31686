//! `Packages.gz` and `Packages.xz`, compressed chunk by chunk with a cache, so that adding
//! one package to a suite of 20,000 recompresses one chunk, not 10 MB of text.
//!
//! The text is cut into chunks at paragraph boundaries chosen by the paragraphs' own
//! contents (a paragraph ends a chunk when its CRC32 falls in one bucket of 256), so an
//! added or removed paragraph moves only the boundaries of its own chunk. Each chunk is
//! compressed alone and kept in `<repo>/cache/indexes/`, named by the SHA256 of its text.
//!
//! - gzip: a file of several members reads as their concatenation (RFC 1952, 2.2); apt
//!   reads them all (checked with `apt-helper cat-file`), as do zlib's gzread and zcat.
//! - xz: apt stops after the first *stream* of a `.xz` file (liblzma without
//!   LZMA_CONCATENATED; checked the same way), but a stream may hold any number of
//!   blocks, as the multithreaded xz encoder writes them. Each chunk is compressed by
//!   liblzma as a one-block stream; the blocks are then put together under one stream
//!   header, index and footer. No crate assembles an xz stream from blocks, hence the
//!   container code below (the xz file format 1.0.4, sections 2 and 4).
//!
//! The output is a function of the text alone: the same text gives the same bytes,
//! whatever is in the cache and however many threads compress.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::deb::compress::{self, Compression, Settings};

/// A chunk ends after a paragraph whose CRC32 is 0 modulo this (about 128 paragraphs,
/// ~65 KiB of typical Packages text, per chunk: a few tens of milliseconds of xz).
const BOUNDARY_MODULUS: u32 = 128;
/// A chunk also ends once it is this large, whatever the paragraphs are.
const MAX_CHUNK: usize = 256 << 10;
const GZIP_LEVEL: u32 = 9;
const XZ_PRESET: u32 = 6;
/// Names the cache generation: bump when the chunking or the compressor settings change.
/// A fingerprint of the compressors' output is added (see [`generation`]).
const CACHE_VERSION: &str = "v2-gz9-xz6-d1m";

/// Where compressed chunks are kept between runs (or nowhere).
#[derive(Debug, Clone)]
pub(crate) struct ChunkCache {
    /// The directory of this cache generation, under the cache root.
    directory: Option<PathBuf>,
}

/// The compressed forms of one `Packages` text, and the cache entries they used.
#[derive(Debug, Clone)]
pub(crate) struct Compressed {
    /// `Packages.gz`.
    pub(crate) gzip: Vec<u8>,
    /// `Packages.xz`.
    pub(crate) xz: Vec<u8>,
    /// The cache keys of the chunks.
    pub(crate) keys: Vec<String>,
}

impl ChunkCache {
    /// The cache of the repository at `root`.
    pub(crate) fn of_repository(root: &Path) -> ChunkCache {
        ChunkCache::in_directory(&root.join("cache").join("indexes"))
    }

    /// A cache kept in `root` (which holds nothing else).
    pub(crate) fn in_directory(root: &Path) -> ChunkCache {
        ChunkCache {
            directory: generation().map(|name| root.join(name)),
        }
    }

    /// No cache: every chunk is compressed.
    #[cfg(test)]
    pub(crate) fn none() -> ChunkCache {
        ChunkCache { directory: None }
    }

    /// Compresses `text`, taking unchanged chunks from the cache and adding new ones.
    pub(crate) fn compress(&self, text: &[u8]) -> Result<Compressed> {
        let chunks = chunks(text);
        let parts = chunks
            .par_iter()
            .map(|chunk| self.chunk(chunk))
            .collect::<Result<Vec<_>>>()?;
        let mut gzip = Vec::new();
        let mut blocks = Vec::new();
        let mut keys = Vec::new();
        for part in parts {
            gzip.extend_from_slice(&part.gzip);
            blocks.extend(part.xz.blocks);
            keys.push(part.key);
        }
        Ok(Compressed {
            gzip,
            xz: xz::assemble(&blocks),
            keys,
        })
    }

    /// Records the chunks a suite's indexes are made of now, for [`ChunkCache::prune`].
    pub(crate) fn record_suite(&self, suite: &str, keys: &[String]) -> Result<()> {
        let Some(directory) = &self.directory else {
            return Ok(());
        };
        let text: String = keys.iter().map(|key| format!("{key}\n")).collect();
        store(&directory.join("suites").join(suite), text.as_bytes())
    }

    /// Removes the cached chunks that no suite of `suites` is made of, the records of
    /// other suites, and older cache generations.
    pub(crate) fn prune(&self, suites: &[String]) -> Result<()> {
        let Some(directory) = &self.directory else {
            return Ok(());
        };
        // Older generations: directories named like this one (`v<digits>-...`), no other.
        if let Some(root) = directory.parent() {
            for generation in read_dir_if_any(root)? {
                let name = generation.file_name().to_string_lossy().into_owned();
                let is_generation = name.strip_prefix('v').is_some_and(|rest| {
                    rest.split('-').next().is_some_and(|number| {
                        !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit())
                    })
                });
                let current = directory
                    .file_name()
                    .is_some_and(|own| own == name.as_str());
                if is_generation && !current && generation.path().is_dir() {
                    fs::remove_dir_all(generation.path()).with_context(|| {
                        format!(
                            "{}: cannot remove an old cache",
                            generation.path().display()
                        )
                    })?;
                }
            }
        }
        let mut keep: BTreeSet<String> = BTreeSet::new();
        let records = directory.join("suites");
        for entry in read_dir_if_any(&records)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            match load(&entry.path()) {
                Some(text) if suites.contains(&name) => {
                    keep.extend(String::from_utf8_lossy(&text).lines().map(str::to_string));
                }
                _ => remove(&entry.path())?,
            }
        }
        for entry in read_dir_if_any(directory)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = name.split('.').next().unwrap_or_default();
            // Only chunk files: a directory here is not ours to remove.
            let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
            if is_file && !keep.contains(key) {
                remove(&entry.path())?;
            }
        }
        Ok(())
    }

    /// One chunk, from the cache when it holds a valid copy, else compressed and stored.
    fn chunk(&self, text: &[u8]) -> Result<Part> {
        let key = hex::encode(&Sha256::digest(text)[..16]);
        let crc = crc32fast::hash(text);
        let paths = self.directory.as_ref().map(|directory| {
            (
                directory.join(format!("{key}.gz")),
                directory.join(format!("{key}.xz")),
            )
        });
        if let Some((gzip_path, xz_path)) = &paths {
            if let (Some(gzip), Some(xz_bytes)) = (load(gzip_path), load(xz_path)) {
                // The entry's own checksums must match the text too.
                if gzip_matches(&gzip, text, crc) {
                    if let Ok(xz) = xz::Split::parse(&xz_bytes, text.len() as u64, crc) {
                        return Ok(Part { key, gzip, xz });
                    }
                }
            }
        }
        let gzip = gzip(text).context("compressing Packages with gzip")?;
        let xz_bytes = xz::compress(text)?;
        let xz = xz::Split::parse(&xz_bytes, text.len() as u64, crc)
            .context("liblzma wrote an xz stream that does not read back")?;
        // A cache that cannot be written costs time next run, never this publication.
        if let Some((gzip_path, xz_path)) = &paths {
            let _ = store(gzip_path, &gzip).and_then(|()| store(xz_path, &xz_bytes));
        }
        Ok(Part { key, gzip, xz })
    }
}

struct Part {
    key: String,
    gzip: Vec<u8>,
    xz: xz::Split,
}

/// `text` as one gzip member at [`GZIP_LEVEL`] (no name, no time: reproducible).
fn gzip(text: &[u8]) -> std::io::Result<Vec<u8>> {
    let settings = Settings {
        compression: Compression::Gzip,
        level: Some(GZIP_LEVEL),
        threads: 1,
    };
    compress::compress_bytes(text, settings)
}

/// The cache generation of this build: [`CACHE_VERSION`] and a fingerprint of what gzip
/// and xz make of a fixed text, so that a debstage built with other compressor libraries
/// (whose bytes may differ) never takes chunks compressed by another. `None` (no cache)
/// if the probe cannot be compressed.
fn generation() -> Option<String> {
    static GENERATION: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    GENERATION
        .get_or_init(|| {
            let probe =
                "Package: probe\nVersion: 1.0-1\nDescription: cache generation\n\n".repeat(64);
            let gzip = gzip(probe.as_bytes()).ok()?;
            let xz = xz::compress(probe.as_bytes()).ok()?;
            let mut hasher = Sha256::new();
            hasher.update(&gzip);
            hasher.update(&xz);
            Some(format!(
                "{CACHE_VERSION}-{}",
                &hex::encode(hasher.finalize())[..12]
            ))
        })
        .clone()
}

/// Cuts `text` after paragraphs (each ends with a blank line, or the text ends) whose
/// CRC32 hits the boundary bucket, or once a chunk reaches [`MAX_CHUNK`]. The chunks put
/// back together are `text`; an empty text is one empty chunk.
fn chunks(text: &[u8]) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut chunk_start = 0;
    let mut paragraph_start = 0;
    let mut position = 0;
    while position < text.len() {
        // The end of this paragraph, including the blank line after it.
        let end = match find(&text[position..], b"\n\n") {
            Some(offset) => position + offset + 2,
            None => text.len(),
        };
        let paragraph = &text[paragraph_start..end];
        let boundary = crc32fast::hash(paragraph).is_multiple_of(BOUNDARY_MODULUS)
            || end - chunk_start >= MAX_CHUNK;
        if boundary || end == text.len() {
            chunks.push(&text[chunk_start..end]);
            chunk_start = end;
        }
        paragraph_start = end;
        position = end;
    }
    if chunks.is_empty() {
        chunks.push(text);
    }
    chunks
}

fn read_dir_if_any(directory: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(directory) {
        Ok(entries) => entries
            .collect::<std::io::Result<Vec<_>>>()
            .with_context(|| format!("{}: cannot be listed", directory.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => {
            Err(error).with_context(|| format!("{}: cannot be listed", directory.display()))
        }
    }
}

fn remove(path: &Path) -> Result<()> {
    fs::remove_file(path)
        .with_context(|| format!("{}: cannot remove a cached index", path.display()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Whether a gzip member's trailer (CRC32 and length) matches `text`.
fn gzip_matches(gzip: &[u8], text: &[u8], crc: u32) -> bool {
    if gzip.len() < 18 || gzip[..2] != [0x1f, 0x8b] {
        return false;
    }
    let trailer = &gzip[gzip.len() - 8..];
    let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let stored_size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    stored_crc == crc && stored_size == text.len() as u32
}

/// Reads a cache file: the SHA256 of the contents, then the contents. `None` when it is
/// missing or damaged (the chunk is then compressed again).
fn load(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = fs::read(path).ok()?;
    if bytes.len() < 32 || Sha256::digest(&bytes[32..])[..] != bytes[..32] {
        return None;
    }
    bytes.drain(..32);
    Some(bytes)
}

/// Writes a cache file (see [`load`]) by rename, so that a reader never sees part of one.
/// Not synced: a file lost or damaged in a crash fails its checksum and is made again.
fn store(path: &Path, bytes: &[u8]) -> Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(directory)
        .with_context(|| format!("{}: cannot create the directory", directory.display()))?;
    let mut temporary = tempfile::NamedTempFile::new_in(directory)
        .with_context(|| format!("{}: cannot create a temporary file", directory.display()))?;
    std::io::Write::write_all(&mut temporary, &Sha256::digest(bytes))
        .and_then(|()| std::io::Write::write_all(&mut temporary, bytes))
        .with_context(|| format!("{}: cannot be written", path.display()))?;
    temporary
        .persist(path)
        .with_context(|| format!("{}: cannot be written", path.display()))?;
    Ok(())
}

/// The xz container: splitting a stream into its blocks and assembling blocks into one
/// stream. Streams here use the CRC32 check, so one checksum serves everything.
mod xz {
    use std::io::Write;

    use anyhow::{bail, Context, Result};

    const HEADER_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
    const FOOTER_MAGIC: [u8; 2] = [b'Y', b'Z'];
    /// Stream flags: no reserved bits, check type 0x01 (CRC32).
    const FLAGS: [u8; 2] = [0x00, 0x01];
    const CHECK_SIZE: u64 = 4;

    /// One block of a stream, with the sizes its index record gives.
    #[derive(Debug, Clone)]
    pub(crate) struct Block {
        /// The block as stored: header, compressed data, padding and check.
        pub(crate) bytes: Vec<u8>,
        /// Header + compressed data + check, without the padding.
        pub(crate) unpadded_size: u64,
        /// The size of the data it decompresses to.
        pub(crate) uncompressed_size: u64,
    }

    /// The dictionary of each chunk's encoder: a chunk is about [`super::MAX_CHUNK`] at
    /// most, so preset 6's 8 MiB would only cost memory (its match finder takes about
    /// 90 MiB per encoder, one per compressing thread, the largest share of a
    /// publication's memory); a dictionary as large as the chunk compresses the same.
    const DICTIONARY: u32 = 1 << 20;

    /// A one-stream `.xz` file taken apart.
    #[derive(Debug, Clone)]
    pub(crate) struct Split {
        pub(crate) blocks: Vec<Block>,
    }

    /// `text` as one xz stream (preset 6 with a dictionary of [`DICTIONARY`], CRC32
    /// check), by liblzma.
    pub(crate) fn compress(text: &[u8]) -> Result<Vec<u8>> {
        let mut options = liblzma::stream::LzmaOptions::new_preset(super::XZ_PRESET)
            .context("starting the xz encoder")?;
        options.dict_size(DICTIONARY);
        let mut filters = liblzma::stream::Filters::new();
        filters.lzma2(&options);
        let stream =
            liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::Crc32)
                .context("starting the xz encoder")?;
        let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        encoder
            .write_all(text)
            .and_then(|()| encoder.finish())
            .context("compressing Packages with xz")
    }

    impl Split {
        /// Takes apart a stream that must decompress to `size` bytes whose CRC32 is `crc`
        /// (as its index and its blocks' checks say; the compressed data is not decoded).
        pub(crate) fn parse(bytes: &[u8], size: u64, crc: u32) -> Result<Split> {
            if bytes.len() < 24
                || bytes[..6] != HEADER_MAGIC
                || bytes[6..8] != FLAGS
                || bytes[8..12] != crc32(&FLAGS)
                || bytes[bytes.len() - 2..] != FOOTER_MAGIC
                || bytes[bytes.len() - 4..bytes.len() - 2] != FLAGS
            {
                bail!("not a single xz stream with CRC32 checks");
            }
            let footer = &bytes[bytes.len() - 12..];
            if footer[..4] != crc32(&footer[4..10]) {
                bail!("the stream footer is damaged");
            }
            let backward = u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]]);
            let index_size = (u64::from(backward) + 1) * 4;
            let index_start = (bytes.len() as u64)
                .checked_sub(12 + index_size)
                .filter(|start| *start >= 12)
                .context("the index does not fit the stream")?
                as usize;
            let index = &bytes[index_start..bytes.len() - 12];
            let records = parse_index(index)?;

            let mut blocks = Vec::with_capacity(records.len());
            let mut offset = 12usize;
            let mut total = 0u64;
            for (unpadded_size, uncompressed_size) in records {
                let stored = unpadded_size.div_ceil(4) * 4;
                let end = offset
                    .checked_add(stored as usize)
                    .filter(|end| *end <= index_start)
                    .context("a block runs past the index")?;
                blocks.push(Block {
                    bytes: bytes[offset..end].to_vec(),
                    unpadded_size,
                    uncompressed_size,
                });
                offset = end;
                total += uncompressed_size;
            }
            if offset != index_start {
                bail!("bytes between the blocks and the index");
            }
            if total != size {
                bail!("the stream holds {total} bytes, not {size}");
            }
            // With one block (the chunks), its check is the CRC32 of the whole text.
            if let [block] = blocks.as_slice() {
                // The check ends the block, after the padding of the compressed data.
                let check = &block.bytes[block.bytes.len() - CHECK_SIZE as usize..];
                if check != crc.to_le_bytes() {
                    bail!("the block's check does not match the text");
                }
            } else if size > 0 {
                bail!("expected one block, found {}", blocks.len());
            }
            Ok(Split { blocks })
        }
    }

    /// One stream holding `blocks` in order.
    pub(crate) fn assemble(blocks: &[Block]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&HEADER_MAGIC);
        out.extend_from_slice(&FLAGS);
        out.extend_from_slice(&crc32(&FLAGS));
        for block in blocks {
            out.extend_from_slice(&block.bytes);
        }
        let mut index = vec![0x00];
        put_varint(&mut index, blocks.len() as u64);
        for block in blocks {
            put_varint(&mut index, block.unpadded_size);
            put_varint(&mut index, block.uncompressed_size);
        }
        while index.len() % 4 != 0 {
            index.push(0);
        }
        let index_crc = crc32(&index);
        index.extend_from_slice(&index_crc);
        let backward = (index.len() as u32 / 4) - 1;
        out.extend_from_slice(&index);
        let mut footer_fields = backward.to_le_bytes().to_vec();
        footer_fields.extend_from_slice(&FLAGS);
        out.extend_from_slice(&crc32(&footer_fields));
        out.extend_from_slice(&footer_fields);
        out.extend_from_slice(&FOOTER_MAGIC);
        out
    }

    /// The (unpadded size, uncompressed size) records of an index, its CRC32 checked.
    fn parse_index(index: &[u8]) -> Result<Vec<(u64, u64)>> {
        if index.len() < 8 || index[0] != 0x00 {
            bail!("the index is damaged");
        }
        let body = &index[..index.len() - 4];
        if index[index.len() - 4..] != crc32(body) {
            bail!("the index checksum does not match");
        }
        let mut position = 1;
        let count = get_varint(body, &mut position)?;
        let mut records = Vec::new();
        for _ in 0..count {
            let unpadded = get_varint(body, &mut position)?;
            let uncompressed = get_varint(body, &mut position)?;
            if unpadded < 5 + CHECK_SIZE {
                bail!("an index record is too small");
            }
            records.push((unpadded, uncompressed));
        }
        if body[position..].iter().any(|byte| *byte != 0) || !body.len().is_multiple_of(4) {
            bail!("the index padding is damaged");
        }
        Ok(records)
    }

    fn crc32(bytes: &[u8]) -> [u8; 4] {
        crc32fast::hash(bytes).to_le_bytes()
    }

    /// The xz multibyte integer: 7 bits a byte, least significant first.
    fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn get_varint(bytes: &[u8], position: &mut usize) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..63).step_by(7) {
            let byte = *bytes.get(*position).context("the index ends early")?;
            *position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        bail!("an index number is too long")
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn packages(count: usize) -> String {
        (0..count)
            .map(|index| {
                format!(
                    "Package: app{index}\nVersion: 1.{index}-1\nArchitecture: amd64\nDescription: number {index}\n"
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn gunzip(bytes: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
        Ok(out)
    }

    fn unxz(bytes: &[u8]) -> Result<Vec<u8>> {
        // One stream only, as apt reads it: the blocks must be in that stream.
        let mut out = Vec::new();
        liblzma::read::XzDecoder::new(bytes).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn chunks_put_back_together_are_the_text_and_move_locally() -> Result<()> {
        let text = packages(3000);
        let cut = chunks(text.as_bytes());
        assert!(cut.len() > 3, "{} chunks", cut.len());
        assert_eq!(cut.concat(), text.as_bytes());
        // One paragraph more changes one chunk (or splits it in two), no other.
        let mut grown = text.clone();
        grown.push_str("\nPackage: zzz\nVersion: 1\nArchitecture: amd64\n");
        let before: BTreeSet<&[u8]> = cut.iter().copied().collect();
        let after = chunks(grown.as_bytes());
        let changed = after
            .iter()
            .filter(|chunk| !before.contains(*chunk))
            .count();
        assert!(changed <= 2, "{changed} chunks changed");
        assert_eq!(chunks(b""), vec![&b""[..]]);
        Ok(())
    }

    #[test]
    fn compressed_indexes_read_back_whole_with_and_without_the_cache() -> Result<()> {
        let directory = tempfile::tempdir()?;
        let cache = ChunkCache::in_directory(directory.path());
        for text in [String::new(), packages(1), packages(3000)] {
            let cold = cache.compress(text.as_bytes())?;
            let warm = cache.compress(text.as_bytes())?;
            let none = ChunkCache::none().compress(text.as_bytes())?;
            assert_eq!(gunzip(&cold.gzip)?, text.as_bytes());
            assert_eq!(unxz(&cold.xz)?, text.as_bytes());
            assert_eq!((&warm.gzip, &warm.xz), (&cold.gzip, &cold.xz));
            assert_eq!((&none.gzip, &none.xz), (&cold.gzip, &cold.xz));
        }
        Ok(())
    }

    #[test]
    fn a_damaged_cache_entry_is_made_again() -> Result<()> {
        let directory = tempfile::tempdir()?;
        let cache = ChunkCache::in_directory(directory.path());
        let text = packages(10);
        let first = cache.compress(text.as_bytes())?;
        let generation = directory
            .path()
            .join(generation().unwrap_or_else(|| CACHE_VERSION.to_string()));
        for entry in fs::read_dir(&generation)? {
            let path = entry?.path();
            let mut bytes = fs::read(&path)?;
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            fs::write(&path, bytes)?;
        }
        let again = cache.compress(text.as_bytes())?;
        assert_eq!((&again.gzip, &again.xz), (&first.gzip, &first.xz));

        // Pruning keeps what a recorded suite uses, and nothing else.
        cache.record_suite("test", &again.keys)?;
        cache.compress(packages(11).as_bytes())?;
        let chunk_files = || -> Result<usize> {
            Ok(fs::read_dir(&generation)?
                .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.path().is_file()))
                .count())
        };
        assert_eq!(chunk_files()?, 4);
        cache.prune(&["test".to_string()])?;
        assert_eq!(chunk_files()?, 2);
        // An older generation goes; whatever else is beside it stays.
        fs::create_dir(directory.path().join("v0-old"))?;
        fs::create_dir(directory.path().join("keep-me"))?;
        cache.prune(&[])?;
        assert_eq!(chunk_files()?, 0);
        assert!(!directory.path().join("v0-old").exists());
        assert!(directory.path().join("keep-me").exists());
        Ok(())
    }

    #[test]
    fn a_stream_that_is_not_ours_is_refused() {
        assert!(xz::Split::parse(b"not xz at all, not at all", 5, 0).is_err());
        let text = b"hello\n";
        let Ok(stream) = xz::compress(text) else {
            panic!("xz failed");
        };
        assert!(xz::Split::parse(&stream, 7, crc32fast::hash(text)).is_err());
        assert!(xz::Split::parse(&stream, 6, crc32fast::hash(text)).is_ok());
    }
}
