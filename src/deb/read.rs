//! Reading a `.deb`: the ar members, and the control paragraph from `control.tar` of any
//! compression.
//!
//! Only the first two members are read (`debian-binary` and `control.tar.*`); the data
//! member's header is checked against the file's length, so a truncated package is
//! refused without decompressing its data.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

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
    read_control_from(&mut File::open(path)?)
}

/// Like [`read_control`], from an open file (read from its start; the position is left
/// anywhere).
#[cfg(test)]
pub(crate) fn read_control_from(file: &mut File) -> Result<PackageControl, ReadError> {
    read_members(file).map(|(control, _)| control)
}

/// Like [`read_control_from`], and also unpacks the data member to its end (without
/// writing anything), so that damage anywhere in the package is found: every compressor
/// checks its own data (CRC32 for gzip, CRC64 for xz, the frame checksum for zstd when
/// the writer set it), and the tar headers carry checksums.
pub(crate) fn read_and_check_from(file: &mut File) -> Result<PackageControl, ReadError> {
    let (control, data) = read_members(file)?;
    // dpkg also reads data.tar.bz2 and data.tar.lzma, which we do not unpack: such a
    // package is taken as it was before this check existed.
    if data.name.ends_with(".bz2") || data.name.ends_with(".lzma") {
        return Ok(control);
    }
    file.seek(SeekFrom::Start(data.offset))?;
    let member = BufReader::with_capacity(64 * 1024, file).take(data.size);
    let damaged =
        |error: io::Error| ReadError::Corrupt(format!("{} cannot be unpacked: {error}", data.name));
    let mut archive = tar::Archive::new(decompressor(&data.name, member)?);
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        io::copy(&mut entry, &mut io::sink()).map_err(damaged)?;
    }
    // The rest of the stream (tar's end blocks, the compressor's trailer and checks).
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(damaged)?;
    Ok(control)
}

/// Where the data member of a package is.
struct DataMember {
    name: String,
    offset: u64,
    size: u64,
}

fn read_members(file: &mut File) -> Result<(PackageControl, DataMember), ReadError> {
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
        control_text(&control_member.name, limited)?
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
        ".zst" => Box::new(
            zstd::stream::read::Decoder::new(member)
                .map_err(|error| ReadError::Corrupt(format!("{name} cannot be opened: {error}")))?,
        ),
        _ => {
            return Err(ReadError::Corrupt(format!(
                "the member {name:?} is not {stem}.tar, {stem}.tar.gz, {stem}.tar.xz or \
                 {stem}.tar.zst"
            )))
        }
    })
}

/// Decompresses `control.tar[.gz|.xz|.zst]` and returns its `control` file as text.
fn control_text(name: &str, member: impl Read) -> Result<String, ReadError> {
    if !name.starts_with("control.tar") {
        return Err(ReadError::Corrupt(format!(
            "the second member is {name:?}, expected control.tar, control.tar.gz, \
             control.tar.xz or control.tar.zst"
        )));
    }
    let decompressed = decompressor(name, member)?;
    let damaged =
        |error: io::Error| ReadError::Corrupt(format!("{name} cannot be unpacked: {error}"));
    let mut archive = tar::Archive::new(decompressed);
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let path = entry.path().map_err(damaged)?.into_owned();
        let path = path.to_string_lossy();
        if path == "./control" || path == "control" {
            if entry.size() > 1024 * 1024 {
                return Err(ReadError::Corrupt(format!(
                    "the control file in {name} is {} bytes; at most 1 MiB is accepted",
                    entry.size()
                )));
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(damaged)?;
            return String::from_utf8(bytes).map_err(|_| {
                ReadError::Corrupt(format!("the control file in {name} is not UTF-8"))
            });
        }
    }
    Err(ReadError::Corrupt(format!("{name} has no control file")))
}

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
        compression: Option<crate::cli::Compression>,
    ) {
        use crate::cli::Compression;
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
        use crate::cli::Compression;
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
