//! The outer `ar` archive of a `.deb`: `debian-binary`, `control.tar.*`, `data.tar.*`,
//! in that order, each header with mode 0644, owner 0:0 and a fixed mtime.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// Writes the ar members of a `.deb` one after another.
pub(crate) struct ArWriter<W: Write> {
    builder: ar::Builder<W>,
    mtime: u64,
}

impl<W: Write> ArWriter<W> {
    /// Starts an archive whose member headers carry `mtime`.
    pub(crate) fn new(inner: W, mtime: u64) -> Self {
        ArWriter {
            builder: ar::Builder::new(inner),
            mtime,
        }
    }

    /// Appends one member of `size` bytes read from `data`.
    pub(crate) fn append(&mut self, name: &str, size: u64, data: impl Read) -> io::Result<()> {
        // The ar crate's headers default to mode 0, which some readers refuse: set all fields.
        let mut header = ar::Header::new(name.as_bytes().to_vec(), size);
        header.set_mode(0o100644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime);
        self.builder.append(&header, data)
    }

    /// Ends the archive and gives back the inner writer.
    pub(crate) fn into_inner(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}

/// The last member of an archive, whose size is known only once it is written (the
/// compressed data member), is streamed between [`start_last_member`], which writes its
/// header with a placeholder size, and [`end_last_member`], which patches the size in:
/// the member needs no spooling to learn its size first.
///
/// Writes the header of the archive's last member with a placeholder size; the member's
/// bytes follow, then [`end_last_member`].
pub(crate) fn start_last_member(out: &mut impl Write, name: &str, mtime: u64) -> io::Result<()> {
    out.write_all(&header(name, mtime, 0)?)
}

/// Ends the last member, whose header [`start_last_member`] wrote at `header_at`: pads it
/// to an even size and patches its size into the header. `out` must be at the member's
/// end, and is left at the archive's end.
pub(crate) fn end_last_member<W: Write + Seek>(
    out: &mut W,
    header_at: u64,
    name: &str,
    mtime: u64,
) -> io::Result<()> {
    let end = out.stream_position()?;
    let size = end - header_at - HEADER_LEN;
    // Members start at even offsets.
    if size % 2 == 1 {
        out.write_all(b"\n")?;
    }
    let finished_at = out.stream_position()?;
    out.seek(SeekFrom::Start(header_at))?;
    out.write_all(&header(name, mtime, size)?)?;
    out.seek(SeekFrom::Start(finished_at))?;
    Ok(())
}

const HEADER_LEN: u64 = 60;

/// A member header as the ar crate writes it for our members (mode 0644, owner 0:0).
fn header(name: &str, mtime: u64, size: u64) -> io::Result<Vec<u8>> {
    if name.len() > 16 || size.to_string().len() > 10 {
        return Err(io::Error::other(format!(
            "ar member {name}: name or size ({size} bytes) does not fit a header"
        )));
    }
    let text = format!(
        "{name:<16}{mtime:<12}{:<6}{:<6}{:<8o}{size:<10}`\n",
        0, 0, 0o100644
    );
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last member streamed with a patched size gives the bytes the ar crate gives
    /// when the size is known up front, for even and odd sizes.
    #[test]
    fn a_streamed_last_member_matches_a_sized_one() -> io::Result<()> {
        for data in [&b"even"[..], &b"odd"[..], &b""[..]] {
            let mut sized = ArWriter::new(Vec::new(), 1_700_000_000);
            sized.append("debian-binary", 4, &b"2.0\n"[..])?;
            sized.append("data.tar.xz", data.len() as u64, data)?;
            let expected = sized.into_inner()?;

            let mut streamed = ArWriter::new(io::Cursor::new(Vec::new()), 1_700_000_000);
            streamed.append("debian-binary", 4, &b"2.0\n"[..])?;
            let mut out = streamed.into_inner()?;
            let header_at = out.stream_position()?;
            start_last_member(&mut out, "data.tar.xz", 1_700_000_000)?;
            out.write_all(data)?;
            end_last_member(&mut out, header_at, "data.tar.xz", 1_700_000_000)?;
            assert_eq!(out.into_inner(), expected, "member of {} bytes", data.len());
        }
        Ok(())
    }
}
