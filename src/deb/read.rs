//! Reading a `.deb`: the ar members, and the control paragraph from `control.tar` of any
//! compression.
//!
//! [`read_control`] reads the first two members (`debian-binary` and `control.tar.*`) and
//! checks the data member's header against the file's length, so a truncated package is
//! refused without decompressing its data; [`read_and_check_from`] also unpacks the data
//! member to its end. Every member is decoded within [`UnpackLimits`].

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::rc::Rc;

use crate::debian::control::{Control, Paragraph};
use crate::debian::names;
use crate::debian::version::Version;

/// Why a file is not a package debstage can read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The file cannot be opened or read.
    #[error("cannot be read: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with the ar magic of a `.deb`.
    #[error("is not a Debian package (no ar archive signature \"!<arch>\")")]
    NotAnArchive,
    /// The archive ends before a member it announces.
    #[error("is truncated: {0}")]
    Truncated(String),
    /// The archive or its control member is damaged.
    #[error("is corrupt: {0}")]
    Corrupt(String),
    /// A member unpacks to more than the limits allow (a decompression bomb, or limits
    /// set too low for this package).
    #[error("{member} {what}")]
    OverLimit {
        /// The member, such as `data.tar.xz`.
        member: String,
        /// Which limit, and its value.
        what: String,
    },
    /// The control paragraph lacks a field every package needs.
    #[error("has no {0} field in its control file")]
    MissingField(&'static str),
    /// A control field has a value that is not allowed.
    #[error("control field {field}: {value:?} {reason}")]
    BadField {
        /// The field name.
        field: &'static str,
        /// The value found.
        value: String,
        /// What is allowed.
        reason: String,
    },
}

/// What the control member of a package says.
#[derive(Debug, Clone)]
pub(crate) struct PackageControl {
    /// The fields, in the order of the file.
    pub(crate) control: Control,
    /// The paragraph as it stands in the file, without trailing blank lines.
    pub(crate) text: String,
}

impl PackageControl {
    /// The value of a field (every required field is checked by [`read_control`]).
    pub(crate) fn field(&self, name: &str) -> &str {
        self.control.get(name).unwrap_or_default()
    }
}

/// How much a member may unpack to: a decompression bomb stops here with
/// [`ReadError::OverLimit`] instead of taking minutes and gigabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnpackLimits {
    /// The most bytes one member may decompress to.
    pub(crate) bytes: u64,
    /// The most tar entries one member may hold.
    pub(crate) entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            bytes: 16 << 30,
            entries: 1_000_000,
        }
    }
}

/// A reader that fails once more than `limit` bytes came through, and says so in `hit`
/// (the tar reader may wrap the error, so the flag, not the error, tells what happened).
struct Capped<R> {
    inner: R,
    remaining: u64,
    hit: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buffer)?;
        if count as u64 > self.remaining {
            self.hit.set(true);
            return Err(io::Error::other("the unpacked size limit was reached"));
        }
        self.remaining -= count as u64;
        Ok(count)
    }
}

/// Unpacks the tar stream of member `name` from `member` to its end within `limits`,
/// giving each regular file whose path `wanted` accepts to `found` (which reads it).
fn unpack_member(
    name: &str,
    member: impl Read,
    limits: UnpackLimits,
    mut found: impl FnMut(&str, &mut dyn Read) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let hit = Rc::new(Cell::new(false));
    let capped = Capped {
        inner: decompressor(name, member)?,
        remaining: limits.bytes,
        hit: Rc::clone(&hit),
    };
    let over_size = || ReadError::OverLimit {
        member: name.to_string(),
        what: format!(
            "unpacks to more than {} bytes (the unpacked size limit)",
            limits.bytes
        ),
    };
    let damaged = |error: io::Error| {
        if hit.get() {
            over_size()
        } else {
            ReadError::Corrupt(format!("{name} cannot be unpacked: {error}"))
        }
    };
    let mut archive = tar::Archive::new(capped);
    let mut count = 0u64;
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        count += 1;
        if count > limits.entries {
            return Err(ReadError::OverLimit {
                member: name.to_string(),
                what: format!(
                    "holds more than {} entries (the entry count limit)",
                    limits.entries
                ),
            });
        }
        let path = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .into_owned();
        found(&path, &mut entry)?;
        io::copy(&mut entry, &mut io::sink()).map_err(damaged)?;
    }
    // The rest of the stream (tar's end blocks, the compressor's trailer and checks).
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(damaged)?;
    Ok(())
}

/// One ar member header.
struct Member {
    name: String,
    size: u64,
}

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER_LENGTH: u64 = 60;

/// Reads the control paragraph of the `.deb` at `path` and checks that it names a
/// package (Package, Version and Architecture present and valid).
#[cfg(test)]
pub(crate) fn read_control(path: &std::path::Path) -> Result<PackageControl, ReadError> {
    read_control_from(&mut File::open(path)?, UnpackLimits::default())
}

/// Like [`read_control`], from an open file (read from its start; the position is left
/// anywhere).
#[cfg(test)]
pub(crate) fn read_control_from(
    file: &mut File,
    limits: UnpackLimits,
) -> Result<PackageControl, ReadError> {
    read_members(file, limits).map(|(control, _)| control)
}

/// Like [`read_control_from`], and also unpacks the data member to its end (without
/// writing anything), so that damage anywhere in the package is found: every compressor
/// dpkg reads checks its own data (CRC32 for gzip and bzip2, CRC64 for xz, the frame
/// checksum for zstd when the writer set it; lzma has none, but its stream must end where
/// the tar ends), and the tar headers carry checksums.
pub(crate) fn read_and_check_from(
    file: &mut File,
    limits: UnpackLimits,
) -> Result<PackageControl, ReadError> {
    let (control, data) = read_members(file, limits)?;
    file.seek(SeekFrom::Start(data.offset))?;
    let member = BufReader::with_capacity(64 * 1024, file).take(data.size);
    unpack_member(&data.name, member, limits, |_, _| Ok(()))?;
    Ok(control)
}

/// Where the data member of a package is.
struct DataMember {
    name: String,
    offset: u64,
    size: u64,
}

fn read_members(
    file: &mut File,
    limits: UnpackLimits,
) -> Result<(PackageControl, DataMember), ReadError> {
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::with_capacity(16 * 1024, file);
    let mut magic = Vec::with_capacity(8);
    (&mut reader).take(8).read_to_end(&mut magic)?;
    // A short file that is not a prefix of the signature is not an archive at all.
    if !AR_MAGIC.starts_with(&magic) || magic.is_empty() {
        return Err(ReadError::NotAnArchive);
    }
    if magic.len() < AR_MAGIC.len() {
        return Err(ReadError::Truncated(
            "the file ends inside the archive signature".to_string(),
        ));
    }
    let mut offset = 8u64;

    let first = next_member(&mut reader, &mut offset, length)?
        .ok_or_else(|| ReadError::Truncated("the archive has no members".to_string()))?;
    if first.name != "debian-binary" {
        return Err(ReadError::Corrupt(format!(
            "the first member is {:?}, expected \"debian-binary\"",
            first.name
        )));
    }
    let mut format = vec![0u8; first.size.min(16) as usize];
    read_exactly(&mut reader, &mut format, "debian-binary")?;
    if !format.starts_with(b"2.") {
        return Err(ReadError::Corrupt(format!(
            "debian-binary says {:?}, expected format 2.x",
            String::from_utf8_lossy(&format).trim_end()
        )));
    }
    skip_member(&mut reader, &mut offset, &first)?;

    let control_member = next_member(&mut reader, &mut offset, length)?
        .ok_or_else(|| ReadError::Truncated("the archive ends after debian-binary".to_string()))?;
    let text = {
        let limited = (&mut reader).take(control_member.size);
        control_text(&control_member.name, limited, limits)?
    };
    skip_member(&mut reader, &mut offset, &control_member)?;

    let data = next_member(&mut reader, &mut offset, length)?
        .ok_or_else(|| ReadError::Truncated("the archive has no data member".to_string()))?;
    if !data.name.starts_with("data.tar") {
        return Err(ReadError::Corrupt(format!(
            "the third member is {:?}, expected data.tar.*",
            data.name
        )));
    }
    let data = DataMember {
        name: data.name,
        offset,
        size: data.size,
    };
    Ok((parse_package_control(&text)?, data))
}

/// Parses a control paragraph and checks the fields a package must have.
pub(crate) fn parse_package_control(text: &str) -> Result<PackageControl, ReadError> {
    let (control, text) = parse_paragraph(text)?;
    let package = control
        .get("Package")
        .ok_or(ReadError::MissingField("Package"))?;
    names::check_package_name(package).map_err(|reason| ReadError::BadField {
        field: "Package",
        value: package.to_string(),
        reason,
    })?;
    let version = control
        .get("Version")
        .ok_or(ReadError::MissingField("Version"))?;
    Version::parse(version).map_err(|error| ReadError::BadField {
        field: "Version",
        value: version.to_string(),
        reason: error.to_string(),
    })?;
    let architecture = control
        .get("Architecture")
        .ok_or(ReadError::MissingField("Architecture"))?;
    names::check_architecture(architecture).map_err(|reason| ReadError::BadField {
        field: "Architecture",
        value: architecture.to_string(),
        reason,
    })?;
    Ok(PackageControl { control, text })
}

/// Parses the one paragraph of a control file with dpkg's rules; gives its fields and its
/// text as stored and listed in indexes (lines without trailing blanks).
fn parse_paragraph(text: &str) -> Result<(Control, String), ReadError> {
    let paragraph = Paragraph::parse(text)
        .map_err(|error| ReadError::Corrupt(format!("control file: {error}")))?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::trim_end)
        .collect();
    Ok((paragraph.to_control(), kept.join("\n")))
}

/// Reads the next ar header, or `None` at the end of the archive.
fn next_member(
    reader: &mut impl Read,
    offset: &mut u64,
    length: u64,
) -> Result<Option<Member>, ReadError> {
    if *offset == length {
        return Ok(None);
    }
    if *offset + HEADER_LENGTH > length {
        return Err(ReadError::Truncated(format!(
            "an ar header at byte {} runs past the end of the file ({length} bytes)",
            *offset
        )));
    }
    let mut header = [0u8; HEADER_LENGTH as usize];
    read_exactly(reader, &mut header, "an ar header")?;
    if &header[58..60] != b"`\n" {
        return Err(ReadError::Corrupt(format!(
            "the ar header at byte {} has no end marker",
            *offset
        )));
    }
    let name = String::from_utf8_lossy(&header[0..16])
        .trim_end()
        .trim_end_matches('/')
        .to_string();
    let size_text = String::from_utf8_lossy(&header[48..58]).trim().to_string();
    let size: u64 = size_text.parse().map_err(|_| {
        ReadError::Corrupt(format!(
            "the ar member {name:?} has the size {size_text:?}, not a number"
        ))
    })?;
    *offset += HEADER_LENGTH;
    if *offset + size > length {
        return Err(ReadError::Truncated(format!(
            "the member {name:?} needs {size} bytes but the file ends {} bytes after its header",
            length - *offset
        )));
    }
    Ok(Some(Member { name, size }))
}

/// Moves to the header after `member` (members are padded to an even length).
fn skip_member(
    reader: &mut (impl Read + Seek),
    offset: &mut u64,
    member: &Member,
) -> Result<(), ReadError> {
    *offset += member.size + member.size % 2;
    reader.seek(SeekFrom::Start(*offset))?;
    Ok(())
}

fn read_exactly(reader: &mut impl Read, buffer: &mut [u8], what: &str) -> Result<(), ReadError> {
    reader.read_exact(buffer).map_err(|error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            ReadError::Truncated(format!("the file ends inside {what}"))
        } else {
            ReadError::Io(error)
        }
    })
}

/// A reader that decompresses the member `name` (`control.tar.xz`, `data.tar.zst`, ...)
/// as its extension says.
fn decompressor<'a>(name: &str, member: impl Read + 'a) -> Result<Box<dyn Read + 'a>, ReadError> {
    let (stem, extension) = match name.rsplit_once(".tar") {
        Some((stem, extension)) => (stem, extension),
        None => (name, ""),
    };
    Ok(match extension {
        "" => Box::new(member),
        // Every gzip member, as dpkg's zlib reader unpacks them all.
        ".gz" => Box::new(flate2::read::MultiGzDecoder::new(member)),
        ".xz" => Box::new(liblzma::read::XzDecoder::new(member)),
        // One bzip2 stream, as dpkg's libbz2 reader takes.
        ".bz2" => Box::new(bzip2::read::BzDecoder::new(member)),
        // The legacy .lzma format (lzma_alone), which dpkg still reads.
        ".lzma" => {
            let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX)
                .map_err(|error| ReadError::Corrupt(format!("{name} cannot be opened: {error}")))?;
            Box::new(liblzma::read::XzDecoder::new_stream(member, stream))
        }
        ".zst" => Box::new(
            zstd::stream::read::Decoder::new(member)
                .map_err(|error| ReadError::Corrupt(format!("{name} cannot be opened: {error}")))?,
        ),
        _ => {
            return Err(ReadError::Corrupt(format!(
                "the member {name:?} uses a compression dpkg does not read: expected \
                 {stem}.tar, {stem}.tar.gz, {stem}.tar.xz, {stem}.tar.zst, {stem}.tar.bz2 \
                 or {stem}.tar.lzma"
            )))
        }
    })
}

/// Decompresses `control.tar.*` to its end and returns its `control` file as text.
fn control_text(name: &str, member: impl Read, limits: UnpackLimits) -> Result<String, ReadError> {
    if !name.starts_with("control.tar") {
        return Err(ReadError::Corrupt(format!(
            "the second member is {name:?}, expected control.tar, control.tar.gz, \
             control.tar.xz or control.tar.zst"
        )));
    }
    let mut control = None;
    unpack_member(name, member, limits, |path, entry| {
        if path != "./control" && path != "control" {
            return Ok(());
        }
        let mut bytes = Vec::new();
        entry
            .take(MAXIMUM_CONTROL + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| ReadError::Corrupt(format!("{name} cannot be unpacked: {error}")))?;
        if bytes.len() as u64 > MAXIMUM_CONTROL {
            return Err(ReadError::Corrupt(format!(
                "the control file in {name} is larger than 1 MiB, the most accepted"
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| ReadError::Corrupt(format!("the control file in {name} is not UTF-8")))?;
        control = Some(text);
        Ok(())
    })?;
    control.ok_or_else(|| ReadError::Corrupt(format!("{name} has no control file")))
}

/// The largest control file accepted.
const MAXIMUM_CONTROL: u64 = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraph_fields_and_continuations() {
        let text = "Package: hello-1.0\nVersion: 1.0-1\nArchitecture: all\n\
                    Description: Hello\n more text\n .\n end\n\n";
        let parsed = parse_package_control(text).expect("valid control");
        assert_eq!(parsed.field("Package"), "hello-1.0");
        assert_eq!(parsed.field("Description"), "Hello\n more text\n .\n end");
        assert!(parsed.text.ends_with(" end"));
    }

    #[test]
    fn missing_and_bad_fields() {
        let missing = parse_package_control("Version: 1\nArchitecture: all\n");
        assert!(matches!(missing, Err(ReadError::MissingField("Package"))));
        let missing = parse_package_control("Package: aa\nArchitecture: all\n");
        assert!(matches!(missing, Err(ReadError::MissingField("Version"))));
        let bad = parse_package_control("Package: aa\nVersion: 1.0-\nArchitecture: all\n");
        assert!(matches!(
            bad,
            Err(ReadError::BadField {
                field: "Version",
                ..
            })
        ));
        let bad = parse_package_control("Package: ../x\nVersion: 1\nArchitecture: all\n");
        assert!(bad.is_err());
    }

    /// A `.deb` assembled member by member with our own ar and tar writers: `control` as
    /// given, control.tar compressed with `compression` (None: uncompressed), an empty
    /// data.tar.gz.
    fn raw_deb(
        path: &std::path::Path,
        control: &str,
        compression: Option<crate::deb::compress::Compression>,
    ) {
        use crate::deb::compress::Compression;
        use crate::deb::compress::{compress_bytes, extension, Settings};
        use crate::deb::tar::TarWriter;
        let settings = |compression| Settings {
            compression,
            level: Some(1),
            threads: 1,
        };
        let mut tar = TarWriter::new(Vec::new(), 0);
        tar.directory("./", 0o755).expect("tar");
        tar.file("./control", 0o644, control.len() as u64, control.as_bytes())
            .expect("tar");
        let control_tar = tar.finish().expect("tar");
        let (name, member) = match compression {
            None => ("control.tar".to_string(), control_tar),
            Some(compression) => (
                format!("control.tar.{}", extension(compression)),
                compress_bytes(&control_tar, settings(compression)).expect("compress"),
            ),
        };
        let mut data = TarWriter::new(Vec::new(), 0);
        data.directory("./", 0o755).expect("tar");
        let data = compress_bytes(&data.finish().expect("tar"), settings(Compression::Gzip))
            .expect("compress");
        let mut file = std::fs::File::create(path).expect("create");
        let mut ar = crate::deb::ar::ArWriter::new(&mut file, 0);
        ar.append("debian-binary", 4, &b"2.0\n"[..]).expect("ar");
        ar.append(&name, member.len() as u64, member.as_slice())
            .expect("ar");
        ar.append("data.tar.gz", data.len() as u64, data.as_slice())
            .expect("ar");
        ar.into_inner().expect("ar");
    }

    #[test]
    fn our_reader_agrees_with_dpkg_deb_on_every_compression() {
        use crate::deb::compress::Compression;
        let temp = tempfile::tempdir().expect("temp");
        let control = "Package: probe\nVersion: 1:2.0~rc1-3\nArchitecture: amd64\n\
                       Maintainer: T <t@example.org>\nDescription: probe\n two lines\n";
        for compression in [
            None,
            Some(Compression::Gzip),
            Some(Compression::Xz),
            Some(Compression::Zstd),
        ] {
            let path = temp.path().join("probe.deb");
            raw_deb(&path, control, compression);
            let ours = read_control(&path).expect("our reader");
            for field in ["Package", "Version", "Architecture", "Description"] {
                let dpkg = std::process::Command::new("dpkg-deb")
                    .arg("--field")
                    .arg(&path)
                    .arg(field)
                    .output()
                    .expect("dpkg-deb runs");
                assert!(dpkg.status.success(), "{compression:?}");
                let theirs = String::from_utf8_lossy(&dpkg.stdout);
                assert_eq!(
                    ours.field(field),
                    theirs.trim_end(),
                    "{field} with {compression:?}"
                );
            }
        }
    }
}
