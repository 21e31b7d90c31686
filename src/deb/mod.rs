//! The `.deb` format: writing packages from a list of entries, and reading them back.
//!
//! A package is written in one pass over its files: the data member is streamed through
//! the compressor into a temporary file while the md5sums and Installed-Size are
//! collected; then `control.tar` is made and the ar archive assembled beside the target,
//! and renamed into place.

pub mod ar;
pub mod compress;
pub mod control;
pub mod read;
pub mod tar;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use md5::{Digest, Md5};
use sha2::Sha256;

use self::compress::{Encoder, Settings};
use self::control::Control;
use self::tar::TarWriter;

/// What one entry of `data.tar` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
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
pub struct Entry {
    /// The installed path without a leading `/` (`opt/shop/1.4.2/bin/shop`).
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// The modification time on disk; clamped to the package's mtime, which it takes when unset.
    pub mtime: Option<u64>,
    /// What it holds.
    pub content: Content,
}

impl Entry {
    /// A regular file with the given bytes.
    pub fn bytes(path: impl Into<String>, mode: u32, bytes: impl Into<Vec<u8>>) -> Self {
        Entry {
            path: path.into(),
            mode,
            mtime: None,
            content: Content::Bytes(bytes.into()),
        }
    }
}

/// A maintainer script or other control member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMember {
    /// The member name (`postinst`, `prerm`, `postrm`, `preinst`).
    pub name: String,
    /// The text.
    pub text: String,
}

/// Everything needed to write one package.
#[derive(Debug, Clone)]
pub struct PackageSpec {
    /// The control fields; Installed-Size is added by the writer.
    pub control: Control,
    /// The data entries, in any order; missing parent directories are added.
    pub entries: Vec<Entry>,
    /// Maintainer scripts (mode 0755 in `control.tar`).
    pub scripts: Vec<ControlMember>,
    /// Compressor settings of both members.
    pub compression: Settings,
    /// The mtime of the headers and the latest mtime of any entry (SOURCE_DATE_EPOCH).
    pub mtime: u64,
}

/// A package that has been written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WrittenPackage {
    /// The file name (`shop-1.4.2_1.4.2-1_amd64.deb`).
    pub file: String,
    /// Where it was written.
    #[serde(skip)]
    pub path: PathBuf,
    /// The Package field.
    pub package: String,
    /// The Version field.
    pub version: String,
    /// The Architecture field.
    pub architecture: String,
    /// The size of the `.deb` in bytes.
    pub size: u64,
    /// The SHA256 of the `.deb`, in hex.
    pub sha256: String,
}

/// The file name Debian gives a package: `name_version_arch.deb`, without the epoch.
pub fn file_name(package: &str, version: &str, architecture: &str) -> String {
    let version = version.split_once(':').map_or(version, |(_, rest)| rest);
    format!("{package}_{version}_{architecture}.deb")
}

/// Writes the package into `directory` under its Debian file name.
pub fn write_package(spec: &PackageSpec, directory: &Path) -> Result<WrittenPackage> {
    let field = |name: &str| {
        spec.control
            .get(name)
            .map(str::to_string)
            .with_context(|| format!("control field {name} is missing"))
    };
    let (package, version, architecture) =
        (field("Package")?, field("Version")?, field("Architecture")?);
    let file = file_name(&package, &version, &architecture);
    let target = directory.join(&file);
    let extension = compress::extension(spec.compression.compression);

    let entries = complete_tree(&spec.entries);
    let mut data_file = tempfile::tempfile_in(directory)
        .with_context(|| format!("{}: cannot create a temporary file", directory.display()))?;
    let summary = write_data(&entries, &mut data_file, spec)
        .with_context(|| format!("writing the data of {file}"))?;
    let data_size = data_file.stream_position()?;
    data_file.rewind()?;

    let mut control = spec.control.clone();
    control.set("Installed-Size", summary.installed_kib.to_string());
    let control_tar = control_archive(&control, &summary, spec)?;

    let mut output = tempfile::NamedTempFile::new_in(directory)
        .with_context(|| format!("{}: cannot create a temporary file", directory.display()))?;
    let mut hashing = HashingWriter::new(BufWriter::new(output.as_file_mut()));
    let mut ar = ar::ArWriter::new(&mut hashing, spec.mtime);
    ar.append("debian-binary", 4, &b"2.0\n"[..])?;
    ar.append(
        &format!("control.tar.{extension}"),
        control_tar.len() as u64,
        control_tar.as_slice(),
    )?;
    ar.append(
        &format!("data.tar.{extension}"),
        data_size,
        io::BufReader::new(data_file),
    )?;
    ar.into_inner()?;
    hashing.flush()?;
    let (size, sha256) = (hashing.size, hex::encode(hashing.hasher.finalize_reset()));
    drop(hashing);
    let mut permissions = output.as_file().metadata()?.permissions();
    // Temporary files are private (0600); a package is for everyone to read.
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o644);
    output.as_file().set_permissions(permissions)?;
    // Readers see the package only when it is complete.
    output
        .persist(&target)
        .with_context(|| format!("{}: cannot be written", target.display()))?;
    Ok(WrittenPackage {
        file,
        path: target,
        package,
        version,
        architecture,
        size,
        sha256,
    })
}

/// What writing the data member learned about the files.
struct DataSummary {
    md5sums: String,
    conffiles: Vec<String>,
    installed_kib: u64,
}

/// Sorts the entries by path (symbolic links last) and adds every missing parent
/// directory (mode 0755).
fn complete_tree(entries: &[Entry]) -> Vec<Entry> {
    let mut directories: BTreeSet<String> = BTreeSet::new();
    let present: BTreeSet<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
    for entry in entries {
        let mut path = entry.path.as_str();
        while let Some((parent, _)) = path.rsplit_once('/') {
            if !present.contains(parent) {
                directories.insert(parent.to_string());
            }
            path = parent;
        }
    }
    let mut all: Vec<Entry> = entries.to_vec();
    all.extend(directories.into_iter().map(|path| Entry {
        path,
        mode: 0o755,
        mtime: None,
        content: Content::Directory,
    }));
    // Symbolic links go last, as dpkg-deb writes them: a link unpacked before the entries
    // beneath its name could redirect them.
    all.sort_by(|left, right| {
        let is_link = |entry: &Entry| matches!(entry.content, Content::Symlink(_));
        is_link(left)
            .cmp(&is_link(right))
            .then_with(|| left.path.cmp(&right.path))
    });
    all.dedup_by(|right, left| left.path == right.path);
    all
}

fn write_data(entries: &[Entry], file: &mut File, spec: &PackageSpec) -> Result<DataSummary> {
    let encoder = Encoder::new(BufWriter::with_capacity(1 << 20, file), spec.compression)?;
    let mut tar = TarWriter::new(encoder, spec.mtime);
    tar.directory("./", 0o755)?;
    let mut summary = DataSummary {
        md5sums: String::new(),
        conffiles: Vec::new(),
        installed_kib: 0,
    };
    for entry in entries {
        let mode = entry.mode & 0o7777;
        tar.set_mtime(
            entry
                .mtime
                .map_or(spec.mtime, |mtime| mtime.min(spec.mtime)),
        );
        match &entry.content {
            Content::Directory => {
                tar.directory(&format!("./{}/", entry.path), mode)?;
                summary.installed_kib += 1;
            }
            Content::Symlink(target) => {
                tar.symlink(&format!("./{}", entry.path), target)?;
                summary.installed_kib += 1;
            }
            Content::Bytes(bytes) => {
                let digest = Md5::digest(bytes);
                tar.file(
                    &format!("./{}", entry.path),
                    mode,
                    bytes.len() as u64,
                    bytes.as_slice(),
                )?;
                summary.record_file(entry, bytes.len() as u64, &hex::encode(digest));
            }
            Content::File { source, size } => {
                let opened = File::open(source)
                    .with_context(|| format!("{}: cannot be read", source.display()))?;
                let mut reader = Md5Reader {
                    inner: opened,
                    hasher: Md5::new(),
                };
                tar.file(&format!("./{}", entry.path), mode, *size, &mut reader)
                    .with_context(|| format!("{}: cannot be archived", source.display()))?;
                let digest = hex::encode(reader.hasher.finalize());
                summary.record_file(entry, *size, &digest);
            }
        }
    }
    let encoder = tar.finish()?;
    let mut writer = encoder.finish()?;
    writer.flush()?;
    Ok(summary)
}

impl DataSummary {
    fn record_file(&mut self, entry: &Entry, size: u64, md5: &str) {
        self.installed_kib += size.div_ceil(1024).max(1);
        self.md5sums.push_str(&format!("{md5}  {}\n", entry.path));
        if entry.path.starts_with("etc/") {
            self.conffiles.push(format!("/{}", entry.path));
        }
    }
}

fn control_archive(
    control: &Control,
    summary: &DataSummary,
    spec: &PackageSpec,
) -> Result<Vec<u8>> {
    let mut tar = TarWriter::new(Vec::new(), spec.mtime);
    tar.directory("./", 0o755)?;
    let mut members: Vec<(String, u32, Vec<u8>)> = vec![
        ("control".to_string(), 0o644, control.to_text().into_bytes()),
        (
            "md5sums".to_string(),
            0o644,
            summary.md5sums.clone().into_bytes(),
        ),
    ];
    if !summary.conffiles.is_empty() {
        let text: String = summary
            .conffiles
            .iter()
            .map(|path| format!("{path}\n"))
            .collect();
        members.push(("conffiles".to_string(), 0o644, text.into_bytes()));
    }
    for script in &spec.scripts {
        members.push((script.name.clone(), 0o755, script.text.clone().into_bytes()));
    }
    members.sort_by(|left, right| left.0.cmp(&right.0));
    for (name, mode, bytes) in &members {
        tar.file(
            &format!("./{name}"),
            *mode,
            bytes.len() as u64,
            bytes.as_slice(),
        )?;
    }
    let plain = tar.finish()?;
    Ok(compress::compress_bytes(&plain, spec.compression)?)
}

/// Hashes what it reads with MD5, for the md5sums file.
struct Md5Reader<R> {
    inner: R,
    hasher: Md5,
}

impl<R: Read> Read for Md5Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(out)?;
        self.hasher.update(&out[..read]);
        Ok(read)
    }
}

/// Counts and hashes (SHA256) what passes through it.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps a writer.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(data)?;
        self.hasher.update(&data[..written]);
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
