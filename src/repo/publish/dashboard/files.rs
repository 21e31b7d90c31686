//! Writes one of the dashboard's files from its pieces: texts rendered now, written as
//! they are, and ranges of the previous file of the same name, copied by the kernel
//! (`copy_file_range`) without passing through memory; runs of ranges that lay side by
//! side in the previous file (with the same separator between them) are one copy. The
//! place of each piece in the new file is returned for the next publication's index.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};

use super::parts::Text;

/// A file being put together.
pub(crate) struct Assembly<'a> {
    out: BufWriter<&'a File>,
    previous: Option<&'a File>,
    /// Bytes written so far (the place of the next piece).
    position: u64,
    /// A run of the previous file not copied yet: (offset, length).
    run: Option<(u64, u64)>,
    /// A separator written after the run, unless the next range continues it.
    separator: &'static [u8],
}

impl<'a> Assembly<'a> {
    /// Writes into `out` (empty), copying ranges from `previous`.
    pub(crate) fn new(out: &'a File, previous: Option<&'a File>) -> Assembly<'a> {
        Assembly {
            out: BufWriter::with_capacity(1 << 16, out),
            previous,
            position: 0,
            run: None,
            separator: b"",
        }
    }

    /// Appends text that belongs to no application (headings, separators, fields).
    pub(crate) fn text(&mut self, text: &[u8]) -> Result<()> {
        self.flush_run()?;
        self.out.write_all(text)?;
        self.position += text.len() as u64;
        Ok(())
    }

    /// Appends `separator` before the next piece: the separator between two pieces of
    /// a list (`,` in JSON).
    pub(crate) fn separator(&mut self, separator: &'static [u8]) -> Result<()> {
        if self.run.is_some() && self.separator.is_empty() {
            // Held back: the next range may follow the run in the previous file.
            self.separator = separator;
            self.position += separator.len() as u64;
            return Ok(());
        }
        self.text(separator)
    }

    /// Appends one application's piece and returns where it lies in the new file (an
    /// empty piece lies nowhere: it neither breaks a run nor takes a separator).
    pub(crate) fn piece(&mut self, piece: &Text) -> Result<Text> {
        if piece.is_empty() {
            return Ok(Text::Old(0, 0));
        }
        let (offset, length) = match piece {
            Text::New(text) => {
                let offset = self.position;
                self.text(text.as_bytes())?;
                (offset, text.len() as u64)
            }
            Text::Old(from, length) => {
                let gap = self.separator.len() as u64;
                match self.run {
                    // In the previous file this range followed the run, with the same
                    // separator between them (every list of one section has one).
                    Some((start, run_length)) if start + run_length + gap == *from => {
                        self.run = Some((start, run_length + gap + length));
                        self.separator = b"";
                    }
                    _ => {
                        self.flush_run()?;
                        self.run = Some((*from, *length));
                    }
                }
                let offset = self.position;
                self.position += length;
                (offset, *length)
            }
        };
        Ok(Text::Old(offset, length))
    }

    /// Writes what is held back and returns the file's length.
    pub(crate) fn finish(mut self) -> Result<u64> {
        self.flush_run()?;
        self.out.flush()?;
        Ok(self.position)
    }

    /// Copies the held run and writes the separator held after it.
    fn flush_run(&mut self) -> Result<()> {
        if let Some((offset, length)) = self.run.take() {
            let Some(previous) = self.previous else {
                bail!("a dashboard range without its previous file (a bug)");
            };
            self.out.flush()?;
            copy_range(previous, offset, length, self.out.get_ref())?;
        }
        let separator = std::mem::take(&mut self.separator);
        self.out.write_all(separator)?;
        Ok(())
    }
}

/// Appends `length` bytes of `from` at `offset` to `to` (at its current position).
fn copy_range(from: &File, offset: u64, length: u64, to: &File) -> Result<()> {
    let mut from_offset = offset;
    let mut left = length;
    while left > 0 {
        let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
        match rustix::fs::copy_file_range(from, Some(&mut from_offset), to, None, chunk) {
            Ok(0) => bail!("the previous dashboard file is shorter than its index says"),
            Ok(copied) => left -= copied as u64,
            // Filesystems and kernels without it: through a buffer.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::XDEV | rustix::io::Errno::INVAL)
            | Err(rustix::io::Errno::OPNOTSUPP) => {
                let mut buffer = vec![0; chunk.min(1 << 20)];
                let mut to = to;
                while left > 0 {
                    let size = buffer
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    from.read_exact_at(&mut buffer[..size], from_offset)
                        .context("the previous dashboard file cannot be read")?;
                    to.write_all(&buffer[..size])?;
                    from_offset += size as u64;
                    left -= size as u64;
                }
            }
            Err(error) => {
                return Err(error).context("the previous dashboard file cannot be copied")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn contents(file: &mut File) -> String {
        let mut text = String::new();
        file.read_to_string(&mut text).expect("read back");
        text
    }

    #[test]
    fn new_texts_and_ranges_of_the_previous_file_make_the_new_one() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let previous_path = directory.path().join("previous");
        std::fs::write(&previous_path, "[aa,bb,cc,dd]").expect("previous");
        let previous = File::open(&previous_path).expect("previous");
        let out_path = directory.path().join("new");
        let out = File::create(&out_path).expect("new");
        let mut assembly = Assembly::new(&out, Some(&previous));
        assembly.text(b"[").expect("text");
        let pieces = [
            Text::Old(1, 2),
            Text::Old(4, 2),
            Text::New("XX".to_string()),
            Text::Old(10, 2),
            Text::Old(7, 2),
        ];
        let mut places = Vec::new();
        for (index, piece) in pieces.iter().enumerate() {
            if index > 0 {
                assembly.separator(b",").expect("separator");
            }
            places.push(assembly.piece(piece).expect("piece"));
        }
        assembly.text(b"]").expect("text");
        assert_eq!(assembly.finish().expect("finished"), 16);
        let mut written = File::open(&out_path).expect("new");
        let text = contents(&mut written);
        assert_eq!(text, "[aa,bb,XX,dd,cc]");
        for (place, expected) in places.iter().zip(["aa", "bb", "XX", "dd", "cc"]) {
            let Text::Old(offset, length) = place else {
                panic!("{place:?}");
            };
            assert_eq!(
                &text[*offset as usize..(offset + length) as usize],
                expected
            );
        }
    }
}
