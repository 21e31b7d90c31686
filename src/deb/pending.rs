//! A package whose data member is compressed before its control member is known.
//!
//! `control.tar` comes before `data.tar` in a `.deb`, but what it holds (the md5sums,
//! Installed-Size, and a payload's Depends and Architecture) comes from reading the
//! files that `data.tar` is made of. [`PendingPackage::start`] compresses `data.tar` on a
//! thread of its own into a spool (an unnamed temporary file) while the caller works the
//! control member out; [`PendingPackage::finish`] writes `debian-binary` and
//! `control.tar` into the package, turns the compressor's output to the package itself,
//! past the place of what the spool holds so far, and copies that in. The data
//! compressed after that is written once, and the bytes are those of a package written
//! in member order.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use super::ar;
use super::compress::{self, Settings};
use super::entry::Entry;
use super::md5sums::FileDigests;
use super::members::{
    abandoned, complete_tree, control_archive, summarise, write_data, ControlMember, WrittenPackage,
};
use crate::debian::control::Control;

/// What `data.tar` is made of.
pub(crate) struct DataSpec {
    /// The data entries, in any order; missing parent directories are added.
    pub(crate) entries: Vec<Entry>,
    /// Compressor settings of both members.
    pub(crate) compression: Settings,
    /// The mtime of the headers and the latest mtime of any entry.
    pub(crate) mtime: u64,
    /// Advanced by the bytes of each file handed to the compressor.
    pub(crate) progress: indicatif::ProgressBar,
}

/// A package whose `data.tar` is being compressed; [`PendingPackage::finish`] completes
/// it. Dropped unfinished, it stops the compressor and leaves nothing behind.
pub(crate) struct PendingPackage {
    entries: Arc<Vec<Entry>>,
    compression: Settings,
    mtime: u64,
    directory: PathBuf,
    sink: Arc<Mutex<Sink>>,
    abandoned: Arc<AtomicBool>,
    compressor: Option<JoinHandle<io::Result<()>>>,
}

/// Where the compressed data goes.
enum Sink {
    /// Until the members before it are written.
    Spool(File),
    /// The package, past the data member's header (written with a placeholder size).
    Package(BufWriter<File>),
    /// Nothing more is written: the package was taken back, or the setup failed.
    Closed,
}

/// The compressor's output: the sink, shared with the thread that switches it.
struct SinkWriter {
    sink: Arc<Mutex<Sink>>,
    abandoned: Arc<AtomicBool>,
}

impl Write for SinkWriter {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Err(abandoned());
        }
        match &mut *lock(&self.sink) {
            Sink::Spool(file) => file.write(buffer),
            Sink::Package(writer) => writer.write(buffer),
            Sink::Closed => Err(abandoned()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut *lock(&self.sink) {
            Sink::Spool(file) => file.flush(),
            Sink::Package(writer) => writer.flush(),
            Sink::Closed => Ok(()),
        }
    }
}

/// The sink, even if a thread panicked while holding it (the package is then dropped).
fn lock(sink: &Mutex<Sink>) -> MutexGuard<'_, Sink> {
    sink.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PendingPackage {
    /// Starts compressing `data.tar` of `data` into a spool in `directory` (where the
    /// package is written, on the same filesystem).
    pub(crate) fn start(data: DataSpec, directory: &Path) -> Result<PendingPackage> {
        let entries = Arc::new(complete_tree(&data.entries));
        let spool = tempfile::tempfile_in(directory)
            .with_context(|| format!("{}: cannot create a temporary file", directory.display()))?;
        let sink = Arc::new(Mutex::new(Sink::Spool(spool)));
        let abandoned = Arc::new(AtomicBool::new(false));
        let compressor = {
            let entries = Arc::clone(&entries);
            let writer = SinkWriter {
                sink: Arc::clone(&sink),
                abandoned: Arc::clone(&abandoned),
            };
            let (compression, mtime, progress) = (data.compression, data.mtime, data.progress);
            std::thread::Builder::new()
                .name("data.tar".into())
                .spawn(move || {
                    let stop = Arc::clone(&writer.abandoned);
                    write_data(&entries, writer, compression, mtime, &progress, &stop)
                })
                .context("cannot start the compressor's thread")?
        };
        Ok(PendingPackage {
            entries,
            compression: data.compression,
            mtime: data.mtime,
            directory: directory.to_path_buf(),
            sink,
            abandoned,
            compressor: Some(compressor),
        })
    }

    /// The entries of `data.tar` in archive order, with the parent directories added.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Completes the package with its `control` fields (Installed-Size is added),
    /// maintainer `scripts` and the MD5s computed beforehand (the others are computed
    /// here), and renames it into the directory under its Debian file name.
    pub(crate) fn finish(
        mut self,
        control: &Control,
        scripts: &[ControlMember],
        digests: &FileDigests,
    ) -> Result<WrittenPackage> {
        let field = |name: &str| {
            control
                .get(name)
                .map(str::to_string)
                .with_context(|| format!("control field {name} is missing"))
        };
        let (package, version, architecture) =
            (field("Package")?, field("Version")?, field("Architecture")?);
        let file = crate::naming::deb_file_name(&package, &version, &architecture);
        let target = self.directory.join(&file);
        let extension = compress::extension(self.compression.compression);

        let summary = summarise(&self.entries, digests)?;
        let mut control = control.clone();
        control.set("Installed-Size", summary.installed_kib.to_string());
        let control_tar =
            control_archive(&control, &summary, scripts, self.compression, self.mtime)?;

        let output = tempfile::NamedTempFile::new_in(&self.directory).with_context(|| {
            format!(
                "{}: cannot create a temporary file",
                self.directory.display()
            )
        })?;
        let data_name = format!("data.tar.{extension}");
        let header_at = self
            .switch_to(
                &output,
                &format!("control.tar.{extension}"),
                &control_tar,
                &data_name,
            )
            .with_context(|| format!("{}: cannot be written", output.path().display()))?;
        let compressed = self.compressor.take().map_or(Ok(()), |compressor| {
            compressor
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the compressor's thread panicked")))
        });
        let taken = std::mem::replace(&mut *lock(&self.sink), Sink::Closed);
        compressed.with_context(|| format!("writing the data of {file}"))?;
        let Sink::Package(mut writer) = taken else {
            anyhow::bail!("writing the data of {file}: the package was not written");
        };
        ar::end_last_member(&mut writer, header_at, &data_name, self.mtime)
            .and_then(|()| writer.flush())
            .with_context(|| format!("writing the data of {file}"))?;
        drop(writer);
        let (size, sha256) = crate::debian::digests::sha256_of(output.path())
            .with_context(|| format!("{}: cannot be read back", output.path().display()))?;
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
            id: crate::naming::package_id::PackageId {
                package,
                version,
                architecture,
            },
            size,
            sha256,
        })
    }

    /// Writes the members before the data into `output`, then the data member's header
    /// (with a placeholder size), turns the compressor's output to `output` past what the
    /// spool holds, and copies that in; gives the offset of the header.
    fn switch_to(
        &self,
        output: &tempfile::NamedTempFile,
        control_name: &str,
        control_tar: &[u8],
        data_name: &str,
    ) -> io::Result<u64> {
        let mut writer = BufWriter::with_capacity(1 << 20, output.as_file().try_clone()?);
        let mut archive = ar::ArWriter::new(&mut writer, self.mtime);
        archive.append("debian-binary", 4, &b"2.0\n"[..])?;
        archive.append(control_name, control_tar.len() as u64, control_tar)?;
        archive.into_inner()?;
        let header_at = writer.stream_position()?;
        ar::start_last_member(&mut writer, data_name, self.mtime)?;
        let data_at = writer.stream_position()?;
        // The compressor goes on past the place of what it spooled so far, which moves
        // over meanwhile: it waits for no copy (nor for the spool's removal).
        let mut sink = lock(&self.sink);
        let spooled = match &mut *sink {
            Sink::Spool(spool) => spool.stream_position()?,
            Sink::Package(_) | Sink::Closed => 0,
        };
        writer.seek(SeekFrom::Current(
            i64::try_from(spooled).map_err(io::Error::other)?,
        ))?;
        let spool = std::mem::replace(&mut *sink, Sink::Package(writer));
        drop(sink);
        if let Sink::Spool(spool) = spool {
            copy_at(&spool, spooled, output.as_file(), data_at)?;
        }
        Ok(header_at)
    }
}

/// The read size of [`copy_at`].
const COPY_CHUNK: usize = 512 << 10;

/// Copies the first `length` bytes of `from` into `to` at `offset`, leaving both files'
/// positions as they are.
fn copy_at(from: &File, length: u64, to: &File, offset: u64) -> io::Result<()> {
    let mut buffer = vec![0; length.min(COPY_CHUNK as u64) as usize];
    let mut done = 0;
    while done < length {
        let chunk = &mut buffer[..(length - done).min(COPY_CHUNK as u64) as usize];
        from.read_exact_at(chunk, done)?;
        to.write_all_at(chunk, offset + done)?;
        done += chunk.len() as u64;
    }
    Ok(())
}

impl Drop for PendingPackage {
    fn drop(&mut self) {
        // Unfinished (an error came first): the compressor stops at its next write.
        if let Some(compressor) = self.compressor.take() {
            self.abandoned.store(true, Ordering::Relaxed);
            let _ = compressor.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::compress::Compression;

    /// A package dropped unfinished (its control member could not be worked out) stops
    /// its compressor, so the drop returns, and leaves no file behind.
    #[test]
    fn an_abandoned_package_stops_its_compressor() -> Result<()> {
        let directory = tempfile::tempdir()?;
        let entries = (0..32u8)
            .map(|index| Entry::bytes(format!("f{index}"), 0o644, vec![index; 1 << 20]))
            .collect();
        let pending = PendingPackage::start(
            DataSpec {
                entries,
                compression: Settings {
                    compression: Compression::Gzip,
                    level: Some(1),
                    threads: 1,
                },
                mtime: 1_700_000_000,
                progress: indicatif::ProgressBar::hidden(),
            },
            directory.path(),
        )?;
        drop(pending);
        assert_eq!(std::fs::read_dir(directory.path())?.count(), 0);
        Ok(())
    }
}
