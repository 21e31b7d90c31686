//! The members of a `.deb` as the writer makes them: the data archive (complete with
//! its parent directories, compressed), what writing it learned about the files
//! (md5sums, conffiles, Installed-Size), and the control archive.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use super::compress::{Encoder, Settings};
use super::entry::{Content, Entry};
use super::md5sums::FileDigests;
use super::tar::TarWriter;
use crate::debian::control::Control;

/// A maintainer script or other control member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ControlMember {
    /// The member name (`postinst`, `prerm`, `postrm`, `preinst`).
    pub(crate) name: String,
    /// The text.
    pub(crate) text: String,
}

/// A package that has been written.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct WrittenPackage {
    /// The file name (`shop-1.4.2_1.4.2-1_amd64.deb`).
    pub(crate) file: String,
    /// Package, Version and Architecture.
    #[serde(flatten)]
    pub(crate) id: crate::naming::package_id::PackageId,
    /// The size of the `.deb` in bytes.
    pub(crate) size: u64,
    /// The SHA256 of the `.deb`, in hex.
    pub sha256: String,
}

/// What writing the data member learned about the files.
pub(super) struct DataSummary {
    pub(super) md5sums: String,
    pub(super) conffiles: Vec<String>,
    pub(super) installed_kib: u64,
}

/// Directories that base-files' postinst makes and no package ships. A package that
/// shipped one would own it alone, and dpkg would remove it with the last such package
/// (piuparts: "/opt/ owned by ... disappears after purge"); dpkg needs no entry for a
/// parent directory that exists.
const SYSTEM_DIRECTORIES: &[&str] = &["opt", "srv", "mnt", "media", "etc/opt", "var/opt"];

/// Sorts the entries by path (symbolic links last) and adds every missing parent
/// directory (mode 0755) except the [`SYSTEM_DIRECTORIES`].
pub(super) fn complete_tree(entries: &[Entry]) -> Vec<Entry> {
    let mut directories: BTreeSet<String> = BTreeSet::new();
    let present: BTreeSet<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
    for entry in entries {
        let mut path = entry.path.as_str();
        while let Some((parent, _)) = path.rsplit_once('/') {
            if !present.contains(parent) && !SYSTEM_DIRECTORIES.contains(&parent) {
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

/// The md5sums, conffiles and Installed-Size of the entries; the files whose digests are
/// not `known` yet are read and hashed.
pub(super) fn summarise(entries: &[Entry], known: &FileDigests) -> Result<DataSummary> {
    let unknown: Vec<Entry> = entries
        .iter()
        .filter(|entry| {
            matches!(entry.content, Content::File { .. } | Content::Bytes(_))
                && known.get(&entry.path).is_none()
        })
        .cloned()
        .collect();
    let mut digests = known.clone();
    digests.extend(super::md5sums::digest_entries(&unknown)?);
    let mut summary = DataSummary {
        md5sums: String::new(),
        conffiles: Vec::new(),
        installed_kib: 0,
    };
    for entry in entries {
        let Some(size) = entry.file_size() else {
            // Directories and links count a block each, as dpkg-gencontrol counts them.
            summary.installed_kib += 1;
            continue;
        };
        let md5 = digests
            .get(&entry.path)
            .with_context(|| format!("{}: no MD5 was computed", entry.path))?;
        summary.installed_kib += size.div_ceil(1024).max(1);
        summary
            .md5sums
            .push_str(&format!("{md5}  {}\n", entry.path));
        if entry.path.starts_with("etc/") {
            summary.conffiles.push(format!("/{}", entry.path));
        }
    }
    Ok(summary)
}

/// Writes the compressed data.tar of the entries (complete, in order) into `out`;
/// stops with an error once `stop` is set.
pub(super) fn write_data(
    entries: &[Entry],
    out: impl Write,
    compression: Settings,
    mtime: u64,
    progress: &indicatif::ProgressBar,
    stop: &AtomicBool,
) -> io::Result<()> {
    let encoder = Encoder::new(out, compression)?;
    // A large buffer in front of the compressor: io::copy then reads each file in big
    // chunks straight into it, and the compressor gets few, large writes.
    let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, encoder), mtime);
    tar.directory("./", 0o755)?;
    for entry in entries {
        if stop.load(Ordering::Relaxed) {
            return Err(abandoned());
        }
        let mode = entry.mode & 0o7777;
        tar.set_mtime(
            entry
                .mtime
                .map_or(mtime, |entry_mtime| entry_mtime.min(mtime)),
        );
        let path = format!("./{}", entry.path);
        match &entry.content {
            Content::Directory => tar.directory(&format!("{path}/"), mode)?,
            Content::Symlink(target) => tar.symlink(&path, target)?,
            Content::Bytes(bytes) => {
                tar.file(&path, mode, bytes.len() as u64, bytes.as_slice())?;
                progress.inc(bytes.len() as u64);
            }
            Content::File { source, size } => {
                let with_name = |error: io::Error| {
                    io::Error::new(error.kind(), format!("{}: {error}", source.display()))
                };
                let opened = File::open(source).map_err(with_name)?;
                tar.file(&path, mode, *size, opened).map_err(with_name)?;
                progress.inc(*size);
            }
        }
    }
    let buffered = tar.finish()?;
    let encoder = buffered
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    encoder.finish()?.flush()
}

pub(super) fn control_archive(
    control: &Control,
    summary: &DataSummary,
    scripts: &[ControlMember],
    compression: Settings,
    mtime: u64,
) -> Result<Vec<u8>> {
    let mut tar = TarWriter::new(Vec::new(), mtime);
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
    for script in scripts {
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
    Ok(super::compress::compress_bytes(&plain, compression)?)
}

/// The error the compressor stops with once the package is abandoned. Not of kind
/// `Interrupted`, which `write_all` and `io::copy` retry forever.
pub(super) fn abandoned() -> io::Error {
    io::Error::other("the package was abandoned")
}
