//! What `repo serve` gives out, and how a file is opened: the published tree only
//! (`dists/`, `pool/` and the public key files at the root), never `state.db`, the
//! configuration, `private/` or `cache/`, and no file that holds secret key material
//! wherever it lies. Every path is checked twice: as requested, and after symlinks are
//! resolved, so a link cannot lead out of the served directories; the file is then
//! opened beneath the root with no symlink allowed on the way (`openat2`), so a link
//! swapped in after the check is not followed either.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};

/// Bytes read from the start of a file to recognise keys.
const SNIFF: usize = 4096;

/// The repository directory a server gives files out of.
#[derive(Debug)]
pub(super) struct ServedTree {
    /// The canonical repository directory.
    root: PathBuf,
    /// The same directory, opened, for `openat2` beneath it.
    directory: OwnedFd,
}

/// Why a request gets no file.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not something the server gives out (403).
    Forbidden,
    /// Allowed, but not there (404).
    Missing,
}

/// A file that may be served, opened.
#[derive(Debug)]
pub(super) struct Opened {
    /// The open file; it stays the same file whatever is renamed over its path.
    pub(super) file: File,
    /// Its path in the repository (`/`-separated), for its `Content-Type`.
    pub(super) relative: String,
    /// Its first bytes (up to a few KiB), which tell a by-hash file's kind.
    pub(super) start: Vec<u8>,
}

impl ServedTree {
    /// Opens the repository directory at `root` (which may be reached through a link).
    pub(super) fn open_root(root: &Path) -> Result<ServedTree> {
        let cannot_open = || {
            format!(
                "{}: the repository directory cannot be opened",
                root.display()
            )
        };
        let canonical = fs::canonicalize(root).with_context(cannot_open)?;
        let directory = rustix::fs::open(
            &canonical,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(cannot_open)?;
        Ok(ServedTree {
            root: canonical,
            directory,
        })
    }

    /// The canonical repository directory.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// Opens the file a request path (`/dists/test/InRelease`, still percent-encoded)
    /// names, if it may be served. Blocking: it resolves the path and reads the start.
    pub(super) fn open(&self, url_path: &str) -> Result<Opened, Refusal> {
        let path = resolve(&self.root, url_path)?;
        let inside = path
            .strip_prefix(&self.root)
            .map_err(|_| Refusal::Forbidden)?;
        // NONBLOCK: opening a FIFO put there must not hang the connection.
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
        let opened = rustix::fs::openat2(
            &self.directory,
            inside,
            flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        );
        let file = match opened {
            Ok(descriptor) => File::from(descriptor),
            // Kernels before 5.6: the path was checked just before; open it without
            // following a final link.
            Err(rustix::io::Errno::NOSYS) => fs::OpenOptions::new()
                .read(true)
                .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
                .open(&path)
                .map_err(|_| Refusal::Missing)?,
            // A link appeared on the way since the path was resolved.
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::XDEV) => {
                return Err(Refusal::Forbidden)
            }
            Err(_) => return Err(Refusal::Missing),
        };
        let metadata = file.metadata().map_err(|_| Refusal::Missing)?;
        if !metadata.is_file() {
            return Err(Refusal::Missing);
        }
        let mut start = vec![0u8; SNIFF];
        let read = read_start(&file, &mut start).map_err(|_| Refusal::Missing)?;
        start.truncate(read);
        if holds_secret_key(&start) {
            return Err(Refusal::Forbidden);
        }
        let dashboard = crate::repo::publish::dashboard::FILES
            .iter()
            .any(|name| inside == Path::new(name));
        if inside.components().count() == 1 && !dashboard && !is_public_key(&start) {
            return Err(Refusal::Forbidden);
        }
        Ok(Opened {
            file,
            relative: inside.to_string_lossy().into_owned(),
            start,
        })
    }
}

/// The file a request path names, if it may be served.
fn resolve(root: &Path, url_path: &str) -> Result<PathBuf, Refusal> {
    let path = url_path.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_decode(path).ok_or(Refusal::Forbidden)?;
    let mut relative = decoded.strip_prefix(b"/").ok_or(Refusal::Forbidden)?;
    if relative.is_empty() {
        // The root is the dashboard's page.
        relative = crate::repo::publish::dashboard::FILES[0].as_bytes();
    }
    if relative.contains(&0) {
        return Err(Refusal::Forbidden);
    }
    let segments: Vec<&[u8]> = relative.split(|byte| *byte == b'/').collect();
    if !allowed(&segments) {
        return Err(Refusal::Forbidden);
    }
    let requested = root.join(Path::new(OsStr::from_bytes(relative)));
    let canonical = fs::canonicalize(&requested).map_err(|_| Refusal::Missing)?;
    // Symlinks resolved: the target must still be inside the root and allowed there.
    let inside = canonical
        .strip_prefix(root)
        .map_err(|_| Refusal::Forbidden)?;
    let mut resolved = Vec::new();
    for component in inside.components() {
        match component {
            Component::Normal(part) => resolved.push(part.as_bytes()),
            _ => return Err(Refusal::Forbidden),
        }
    }
    if !allowed(&resolved) {
        return Err(Refusal::Forbidden);
    }
    let metadata = fs::metadata(&canonical).map_err(|_| Refusal::Missing)?;
    if !metadata.is_file() {
        return Err(Refusal::Missing);
    }
    Ok(canonical)
}

/// The path rule: `dists/...` or `pool/...`, or one `*.asc`/`*.gpg` file or one of the
/// dashboard's files at the root;
/// no empty, `.`, `..` or hidden segment (temporary files of a publication start with a
/// dot).
fn allowed(segments: &[&[u8]]) -> bool {
    if segments
        .iter()
        .any(|segment| segment.is_empty() || segment.starts_with(b"."))
    {
        return false;
    }
    match segments {
        [name] => {
            name.ends_with(b".asc")
                || name.ends_with(b".gpg")
                || crate::repo::publish::dashboard::FILES
                    .iter()
                    .any(|file| file.as_bytes() == *name)
        }
        [top, _, ..] => matches!(*top, b"dists" | b"pool"),
        [] => false,
    }
}

/// Reads up to `buffer.len()` bytes from the start of `file`.
fn read_start(file: &File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// True when the start of a file looks like secret key material: an armored OpenPGP
/// secret key (the armor line may follow other text, as gpg reads it), a binary one
/// (its first packet a secret key or subkey, tags 5 and 7, in the old or new packet
/// format), or a key file of gpg-agent (`private-keys-v1.d`). None of the files a
/// publication writes starts like that: `.deb` files start with `!<arch>`, indexes with
/// a field name or a compression magic, and Packages' description lines with a space.
fn holds_secret_key(start: &[u8]) -> bool {
    let armored = start.split(|byte| *byte == b'\n').any(|line| {
        line.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
            || line.starts_with(b"-----BEGIN PGP SECRET KEY BLOCK-----")
    });
    let agent = start.starts_with(b"(21:protected-private-key")
        || start.starts_with(b"(11:private-key")
        || start.split(|byte| *byte == b'\n').any(|line| {
            line.starts_with(b"Key: (") && memchr::memmem::find(line, b"private-key").is_some()
        });
    armored || agent || matches!(packet_tag(start), Some(5 | 7))
}

/// The tag of the OpenPGP packet a file starts with, if it starts with one.
fn packet_tag(start: &[u8]) -> Option<u8> {
    match start.first() {
        Some(&first) if first & 0x80 != 0 => Some(if first & 0x40 != 0 {
            first & 0x3f
        } else {
            (first >> 2) & 0x0f
        }),
        _ => None,
    }
}

/// True when the start of a file is an OpenPGP public key (armored or binary): the only
/// files served at the root, so that nothing else saved there as `*.asc` leaks.
fn is_public_key(start: &[u8]) -> bool {
    if start.starts_with(b"-----") {
        return start.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----");
    }
    // Binary: the first packet must be a public key (tag 6).
    packet_tag(start) == Some(6)
}

/// Decodes `%XX` escapes (apt escapes characters such as `+` and `~` in file names).
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_the_published_tree_is_allowed() {
        let root = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(root.path()).unwrap();
        fs::create_dir_all(root.join("dists/test")).unwrap();
        fs::write(root.join("dists/test/InRelease"), "x").unwrap();
        fs::write(root.join("state.db"), "secret").unwrap();
        assert_eq!(
            resolve(&root, "/dists/test/InRelease"),
            Ok(root.join("dists/test/InRelease"))
        );
        assert_eq!(
            resolve(&root, "/dists/test/In%52elease?x=1"),
            Ok(root.join("dists/test/InRelease"))
        );
        // The dashboard, at / too.
        fs::write(root.join("index.html"), "page").unwrap();
        assert_eq!(resolve(&root, "/"), Ok(root.join("index.html")));
        assert_eq!(resolve(&root, "/index.html"), Ok(root.join("index.html")));
        for refused in [
            "/state.db",
            "/../state.db",
            "/dists/../state.db",
            "/dists/%2e%2e/state.db",
            "/dists/test/../../state.db",
            "//state.db",
            "/dists",
            "/dists/test/.debstage-tmp-x",
            "dists/test/InRelease",
            "/dists/test/%00",
            "/dists/test/%zz",
        ] {
            assert_eq!(
                resolve(&root, refused),
                Err(Refusal::Forbidden),
                "{refused}"
            );
        }
        assert_eq!(resolve(&root, "/dists/test/Release"), Err(Refusal::Missing));
    }

    #[test]
    fn secret_keys_are_recognised() {
        assert!(!is_public_key(b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n"));
        assert!(is_public_key(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"));
        assert!(is_public_key(&[0x98, 0x33]));
        assert!(!is_public_key(&[0x94, 0x33]));
        assert!(!is_public_key(&[0xc5, 0x33]));
        for secret in [
            &b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxVgE"[..],
            b"Comment: saved by hand\n-----BEGIN PGP PRIVATE KEY BLOCK-----\n",
            &[0x94, 0x33],
            &[0x95, 0x01, 0x00],
            &[0x9d, 0x33],
            &[0xc5, 0x33],
            &[0xc7, 0x33],
            b"(21:protected-private-key(3:ecc",
            b"Created: 20240101T000000\nKey: (protected-private-key (ecc\n",
        ] {
            assert!(holds_secret_key(secret), "{secret:?}");
        }
        for public in [
            &b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"[..],
            b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n",
            b"!<arch>\ndebian-binary   ",
            b"Package: hello\nDescription: x\n -----BEGIN PGP PRIVATE KEY BLOCK-----\n",
            &[0x1f, 0x8b, 0x08],
            &[0xfd, b'7', b'z', b'X', b'Z', 0],
            &[0x98, 0x33],
            b"",
        ] {
            assert!(!holds_secret_key(public), "{public:?}");
        }
    }
}
