//! Where each application's parts lie in the dashboard's files, kept in
//! `cache/dashboard` of the repository (never served, never uploaded). With 20,000
//! applications, reading the state of all of them and rendering them took ~180 ms of
//! every publication, a promote of one package included, and copying 30 MB of rendered
//! text through memory most of the rest; with this index a publication renders only the
//! applications whose change token moved, and the new files copy the other parts from
//! the previous ones in the kernel (`files.rs`).
//!
//! The file is this module's own binary layout (length-prefixed fields, a CRC-32 at the
//! end): nothing else reads it, and a general format (JSON, bincode) would cost a parse
//! or a dependency for no reader. An index that is missing, damaged, made for another
//! key (another debstage binary or list of stages) or for files other than the ones in
//! place (size or time changed) is ignored: the publication renders every
//! application and writes a new one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::parts::{Part, Text};

/// What the file starts with.
const MAGIC: &[u8] = b"debstage dashboard index 1\n";

/// Where the index of the repository at `root` lives.
fn path(root: &Path) -> PathBuf {
    root.join("cache").join("dashboard")
}

/// Which file a part's ranges point into: its size and modification time (seconds,
/// nanoseconds). Not its inode: a copy of the repository (`cp -a`) keeps the rest and
/// its index stays good.
pub(crate) type Identity = [u64; 3];

/// The identity of the file at `path`, if there is one.
pub(crate) fn identity(path: &Path) -> Option<Identity> {
    let metadata = fs::metadata(path).ok()?;
    Some([
        metadata.len(),
        metadata.mtime() as u64,
        metadata.mtime_nsec() as u64,
    ])
}

/// What the index records of the last dashboard.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Index {
    /// Every application it shows, its texts as ranges of its files.
    pub(crate) parts: BTreeMap<String, Part>,
    /// The applications with a token and nothing to show (no package), with their token.
    pub(crate) absent: BTreeMap<String, i64>,
}

/// The index of the last dashboard made with `key`, its texts ranges of `files`
/// (`index.html`, `status.json`); `None` when there is no such index, it is damaged,
/// or the files are not the ones it describes. `pairs`: how many pairs of adjacent
/// stages each part holds.
pub(crate) fn load(root: &Path, key: u64, pairs: usize, files: [&Path; 2]) -> Option<Index> {
    let bytes = fs::read(path(root)).ok()?;
    let identities = files.map(identity);
    decode(&bytes, key, pairs, identities)
}

fn decode(
    bytes: &[u8],
    key: u64,
    pairs: usize,
    identities: [Option<Identity>; 2],
) -> Option<Index> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body).to_le_bytes() != sum {
        return None;
    }
    let mut reader = Reader {
        bytes: body.strip_prefix(MAGIC)?,
    };
    if reader.u64()? != key {
        return None;
    }
    for identity in identities {
        let recorded = [reader.u64()?, reader.u64()?, reader.u64()?];
        if Some(recorded) != identity {
            return None;
        }
    }
    let count = reader.u64()?;
    let mut parts = BTreeMap::new();
    for _ in 0..count {
        let app = reader.string()?;
        let token = reader.u64()? as i64;
        let distributions = (0..reader.u64()?)
            .map(|_| {
                let codename = reader.string()?;
                Some((!codename.is_empty()).then_some(codename))
            })
            .collect::<Option<Vec<_>>>()?;
        let html_rows = reader.range()?;
        let json_rows = reader.range()?;
        let differences = (0..pairs)
            .map(|_| Some((reader.range()?, reader.range()?)))
            .collect::<Option<Vec<_>>>()?;
        parts.insert(
            app,
            Part {
                token,
                distributions,
                html_rows,
                json_rows,
                differences,
            },
        );
    }
    let absent = (0..reader.u64()?)
        .map(|_| Some((reader.string()?, reader.u64()? as i64)))
        .collect::<Option<BTreeMap<_, _>>>()?;
    reader.bytes.is_empty().then_some(Index { parts, absent })
}

/// Writes the index of `parts` (every application of the dashboard just written, each
/// text a range of the new files, whose identities are `identities`), by rename and
/// without a sync: a torn file fails its check and costs one full render.
pub(crate) fn store(root: &Path, key: u64, identities: [Identity; 2], index: &Index) -> Result<()> {
    let path = path(root);
    let directory = path.parent().unwrap_or(root);
    fs::create_dir_all(directory)
        .with_context(|| format!("{}: cannot be created", directory.display()))?;
    let mut bytes = Vec::from(MAGIC);
    bytes.extend_from_slice(&key.to_le_bytes());
    for value in identities.iter().flatten() {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes.extend_from_slice(&(index.parts.len() as u64).to_le_bytes());
    for (app, part) in &index.parts {
        put(&mut bytes, app);
        bytes.extend_from_slice(&(part.token as u64).to_le_bytes());
        bytes.extend_from_slice(&(part.distributions.len() as u64).to_le_bytes());
        for codename in &part.distributions {
            put(&mut bytes, codename.as_deref().unwrap_or(""));
        }
        let texts = [&part.html_rows, &part.json_rows].into_iter().chain(
            part.differences
                .iter()
                .flat_map(|(html, json)| [html, json]),
        );
        for text in texts {
            let Text::Old(offset, length) = text else {
                anyhow::bail!("the dashboard index holds ranges only (a bug)");
            };
            bytes.extend_from_slice(&offset.to_le_bytes());
            bytes.extend_from_slice(&length.to_le_bytes());
        }
    }
    bytes.extend_from_slice(&(index.absent.len() as u64).to_le_bytes());
    for (app, token) in &index.absent {
        put(&mut bytes, app);
        bytes.extend_from_slice(&(*token as u64).to_le_bytes());
    }
    let sum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    let mut file = tempfile::NamedTempFile::new_in(directory)
        .with_context(|| format!("{}: cannot be written", directory.display()))?;
    file.write_all(&bytes)
        .with_context(|| format!("{}: cannot be written", path.display()))?;
    file.persist(&path)
        .with_context(|| format!("{}: cannot be written", path.display()))?;
    Ok(())
}

/// Removes the index (`[publish] dashboard = false`).
pub(crate) fn remove(root: &Path) -> Result<()> {
    let path = path(root);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("{}: cannot be removed", path.display())),
    }
}

fn put(bytes: &mut Vec<u8>, text: &str) {
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
}

/// Reads the layout [`store`] writes; every method is `None` past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.bytes.split_first_chunk::<8>()?;
        self.bytes = rest;
        Some(u64::from_le_bytes(*head))
    }

    fn range(&mut self) -> Option<Text> {
        Some(Text::Old(self.u64()?, self.u64()?))
    }

    fn string(&mut self) -> Option<String> {
        let length = usize::try_from(self.u64()?).ok()?;
        let (text, rest) = self.bytes.split_at_checked(length)?;
        self.bytes = rest;
        String::from_utf8(text.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(token: i64) -> Part {
        Part {
            token,
            distributions: vec![None, Some("bookworm".to_string())],
            html_rows: Text::Old(0, 10),
            json_rows: Text::Old(5, 7),
            differences: vec![(Text::Old(10, 0), Text::Old(12, 3))],
        }
    }

    /// Two files in `root` whose identities the index records.
    fn files(root: &Path) -> [PathBuf; 2] {
        let files = ["index.html", "status.json"].map(|name| root.join(name));
        for file in &files {
            fs::write(file, "0123456789abcdef").expect("file written");
        }
        files
    }

    fn store_index(root: &Path, key: u64, index: &Index, files: &[PathBuf; 2]) {
        let identities = [&files[0], &files[1]].map(|file| identity(file).expect("identity"));
        store(root, key, identities, index).expect("stored");
    }

    #[test]
    fn what_is_stored_loads_back_only_with_its_key_and_files() {
        let root = tempfile::tempdir().expect("temporary directory");
        let files = files(root.path());
        let index = Index {
            parts: BTreeMap::from([
                ("hello".to_string(), part(-5)),
                ("world".to_string(), part(7)),
            ]),
            absent: BTreeMap::from([("gone".to_string(), 3)]),
        };
        store_index(root.path(), 42, &index, &files);
        let both = [files[0].as_path(), files[1].as_path()];
        assert_eq!(load(root.path(), 42, 1, both), Some(index));
        assert_eq!(load(root.path(), 43, 1, both), None);
        assert_eq!(load(root.path(), 42, 2, both), None);
        fs::write(&files[1], "another file").expect("replaced");
        assert_eq!(load(root.path(), 42, 1, both), None);
    }

    #[test]
    fn a_damaged_index_is_ignored() {
        let root = tempfile::tempdir().expect("temporary directory");
        let files = files(root.path());
        let index = Index {
            parts: BTreeMap::from([("hello".to_string(), part(1))]),
            absent: BTreeMap::new(),
        };
        store_index(root.path(), 1, &index, &files);
        let both = [files[0].as_path(), files[1].as_path()];
        let file = path(root.path());
        let mut bytes = fs::read(&file).expect("index read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        fs::write(&file, &bytes).expect("index written");
        assert_eq!(load(root.path(), 1, 1, both), None);
        bytes.truncate(middle);
        fs::write(&file, &bytes).expect("index written");
        assert_eq!(load(root.path(), 1, 1, both), None);
    }
}
