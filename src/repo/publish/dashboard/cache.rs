//! The rendered parts of the last dashboard, per application, kept in
//! `cache/dashboard` of the repository (never served, never uploaded). With 20,000
//! applications, reading the state of all of them and rendering them took ~180 ms of
//! every publication, a promote of one package included; with this cache a publication
//! reads and renders only the applications whose change token moved.
//!
//! The file is this module's own binary layout (length-prefixed strings, a CRC-32 at the
//! end): nothing else reads it, and a general format (JSON, bincode) would cost a parse
//! or a dependency for no reader. A file that is missing, damaged or made for another
//! key (another debstage binary, template or list of stages) is ignored: the
//! publication renders every application and writes a new one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::parts::Part;

/// What the file starts with.
const MAGIC: &[u8] = b"debstage dashboard cache 1\n";

/// Where the cache of the repository at `root` lives.
fn path(root: &Path) -> PathBuf {
    root.join("cache").join("dashboard")
}

/// The parts of the last dashboard made with `key`, by application; `None` when there is
/// no such cache (or it is damaged). `pairs`: how many pairs of adjacent stages each part
/// holds.
pub(crate) fn load(root: &Path, key: u64, pairs: usize) -> Option<BTreeMap<String, Part>> {
    let bytes = fs::read(path(root)).ok()?;
    decode(&bytes, key, pairs)
}

fn decode(bytes: &[u8], key: u64, pairs: usize) -> Option<BTreeMap<String, Part>> {
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
        let html_rows = reader.string()?;
        let json_rows = reader.string()?;
        let differences = (0..pairs)
            .map(|_| Some((reader.string()?, reader.string()?)))
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
    reader.bytes.is_empty().then_some(parts)
}

/// Writes the cache for `parts` (every application of the dashboard just written), by
/// rename and without a sync: a torn file fails its check and costs one full render.
pub(crate) fn store<'a>(
    root: &Path,
    key: u64,
    parts: impl ExactSizeIterator<Item = (&'a str, &'a Part)>,
) -> Result<()> {
    let path = path(root);
    let directory = path.parent().unwrap_or(root);
    fs::create_dir_all(directory)
        .with_context(|| format!("{}: cannot be created", directory.display()))?;
    let mut bytes = Vec::from(MAGIC);
    bytes.extend_from_slice(&key.to_le_bytes());
    bytes.extend_from_slice(&(parts.len() as u64).to_le_bytes());
    for (app, part) in parts {
        put(&mut bytes, app);
        bytes.extend_from_slice(&(part.token as u64).to_le_bytes());
        bytes.extend_from_slice(&(part.distributions.len() as u64).to_le_bytes());
        for codename in &part.distributions {
            put(&mut bytes, codename.as_deref().unwrap_or(""));
        }
        put(&mut bytes, &part.html_rows);
        put(&mut bytes, &part.json_rows);
        for (html, json) in &part.differences {
            put(&mut bytes, html);
            put(&mut bytes, json);
        }
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

/// Removes the cache (`[publish] dashboard = false`).
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
            html_rows: "<tr>\n</tr>\n".to_string(),
            json_rows: "{\"app\":\"hello\"}".to_string(),
            differences: vec![("<li>x</li>\n".to_string(), "{}".to_string())],
        }
    }

    #[test]
    fn what_is_stored_loads_back_only_with_its_key() {
        let root = tempfile::tempdir().expect("temporary directory");
        let parts = BTreeMap::from([
            ("hello".to_string(), part(-5)),
            ("world".to_string(), part(7)),
        ]);
        store(
            root.path(),
            42,
            parts.iter().map(|(app, part)| (app.as_str(), part)),
        )
        .expect("stored");
        assert_eq!(load(root.path(), 42, 1), Some(parts));
        assert_eq!(load(root.path(), 43, 1), None);
        assert_eq!(load(root.path(), 42, 2), None);
    }

    #[test]
    fn a_damaged_file_is_ignored() {
        let root = tempfile::tempdir().expect("temporary directory");
        let parts = BTreeMap::from([("hello".to_string(), part(1))]);
        store(
            root.path(),
            1,
            parts.iter().map(|(app, part)| (app.as_str(), part)),
        )
        .expect("stored");
        let file = path(root.path());
        let mut bytes = fs::read(&file).expect("cache read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        fs::write(&file, &bytes).expect("cache written");
        assert_eq!(load(root.path(), 1, 1), None);
        bytes.truncate(middle);
        fs::write(&file, &bytes).expect("cache written");
        assert_eq!(load(root.path(), 1, 1), None);
    }
}
