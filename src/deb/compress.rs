//! The compressors of `control.tar` and `data.tar`: one writer type over xz, gzip and zstd,
//! each set up to give the same bytes whatever the number of threads.

use std::io::{self, Write};

/// Compressors for the members of a `.deb`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// xz (LZMA2), the default of Debian's tools.
    Xz,
    /// gzip (deflate), fast and universally readable.
    Gzip,
    /// zstd; needs dpkg >= 1.21.18 on the server.
    Zstd,
}

/// Compressor settings for one archive member.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Which compressor.
    pub(crate) compression: Compression,
    /// Its level; `None` is the level dpkg-deb uses (see [`Settings::level`]).
    pub(crate) level: Option<u32>,
    /// Worker threads (at least 1).
    pub(crate) threads: u32,
}

impl Settings {
    /// The level in use: the given one, or the default dpkg-deb uses.
    pub(crate) fn level(&self) -> u32 {
        self.level.unwrap_or(match self.compression {
            Compression::Xz => 6,
            Compression::Gzip => 9,
            Compression::Zstd => 3,
        })
    }

    /// Checks the level against what the compressor allows.
    pub(crate) fn check(&self) -> Result<(), String> {
        let (low, high) = match self.compression {
            Compression::Xz => (0, 9),
            Compression::Gzip => (1, 9),
            Compression::Zstd => (1, 19),
        };
        let level = self.level();
        if (low..=high).contains(&level) {
            Ok(())
        } else {
            Err(format!(
                "--level {level}: {} allows {low} to {high}",
                extension(self.compression)
            ))
        }
    }
}

/// The size of the jobs a multithreaded zstd stream is cut into (see [`Encoder::new`]).
const ZSTD_JOB_SIZE: u32 = 2 << 20;

/// The file-name extension of a member: `xz`, `gz` or `zst`.
pub(crate) fn extension(compression: Compression) -> &'static str {
    match compression {
        Compression::Xz => "xz",
        Compression::Gzip => "gz",
        Compression::Zstd => "zst",
    }
}

/// The number of threads to compress with: every core.
pub(crate) fn available_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |count| count.get() as u32)
}

/// A compressing writer; call [`Encoder::finish`] to end the stream.
pub(crate) enum Encoder<W: Write> {
    /// xz through liblzma (multithreaded when threads > 1).
    Xz(liblzma::write::XzEncoder<W>),
    /// gzip through flate2.
    Gzip(flate2::write::GzEncoder<W>),
    /// zstd with a fixed number of workers.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Starts a compressed stream into `inner`.
    pub(crate) fn new(inner: W, settings: Settings) -> io::Result<Self> {
        let level = settings.level();
        Ok(match settings.compression {
            Compression::Xz => {
                // The multithreaded encoder splits the input into blocks whose size depends
                // only on the preset, so the bytes do not depend on the thread count.
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .preset(level)
                    .threads(settings.threads.max(1))
                    .check(liblzma::stream::Check::Crc64)
                    .encoder()
                    .map_err(io::Error::other)?;
                Encoder::Xz(liblzma::write::XzEncoder::new_stream(inner, stream))
            }
            Compression::Gzip => {
                // GzBuilder writes no name and a zero mtime: the header is reproducible.
                Encoder::Gzip(
                    flate2::GzBuilder::new().write(inner, flate2::Compression::new(level)),
                )
            }
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(inner, level as i32)?;
                // Workers must be set (>= 1): output at 0 workers differs from every other count.
                encoder.multithread(settings.threads.max(1))?;
                // zstd's default job is 4 windows (8 MiB at level 3), and a multithreaded
                // stream holds several jobs' input and output at once: 85 MB more than
                // gzip's build of the bench tree. Jobs of 2 MiB bound that to about 30 MB,
                // and the bench tree's payload grows by 0.3% (still smaller than
                // dpkg-deb's). A fixed size keeps the bytes the same for any thread count.
                encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
        })
    }

    /// Ends the compressed stream and gives back the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Xz(encoder) => encoder.finish(),
            Encoder::Gzip(encoder) => encoder.finish(),
            Encoder::Zstd(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Xz(encoder) => encoder.write(buffer),
            Encoder::Gzip(encoder) => encoder.write(buffer),
            Encoder::Zstd(encoder) => encoder.write(buffer),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Xz(encoder) => encoder.flush(),
            Encoder::Gzip(encoder) => encoder.flush(),
            Encoder::Zstd(encoder) => encoder.flush(),
        }
    }
}

/// Compresses a whole buffer (for small members such as `control.tar`).
pub(crate) fn compress_bytes(data: &[u8], settings: Settings) -> io::Result<Vec<u8>> {
    let mut encoder = Encoder::new(Vec::new(), settings)?;
    encoder.write_all(data)?;
    encoder.finish()
}
