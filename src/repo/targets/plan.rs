//! What a publication to a target writes, and in which order: the local tree's public
//! files (the ones `repo serve` serves) sorted into the reader-safe phases, with the
//! headers each kind of object gets.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::repo::publish::dashboard;

/// The kinds of objects, in the order their phases are written: a reader that fetches
/// an `InRelease` finds every object it names already in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Class {
    /// `pool/...`, and the public key files at the root.
    Pool,
    /// `dists/<suite>/.../by-hash/<algorithm>/<digest>`.
    ByHash,
    /// Plain-name indexes (`Packages`, `Packages.gz`, `Packages.xz`, ...).
    Index,
    /// `Release` and `Release.gpg`.
    Release,
    /// `InRelease`.
    InRelease,
    /// The dashboard (`index.html`, `status.json`), last: its page never names a version
    /// the suites do not serve yet.
    Dashboard,
}

impl Class {
    /// Every phase, in writing order.
    pub(crate) const ORDER: [Class; 6] = [
        Class::Pool,
        Class::ByHash,
        Class::Index,
        Class::Release,
        Class::InRelease,
        Class::Dashboard,
    ];

    /// Whether a key of this class always names the same bytes (a pool file's name
    /// carries its version; a by-hash name is the digest), so that an object recorded
    /// with the same size needs no hashing to be known unchanged.
    pub(crate) fn immutable(self) -> bool {
        matches!(self, Class::Pool | Class::ByHash)
    }

    /// The name of the phase in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::Pool => "pool",
            Class::ByHash => "by-hash",
            Class::Index => "indexes",
            Class::Release => "Release",
            Class::InRelease => "InRelease",
            Class::Dashboard => "dashboard",
        }
    }
}

/// One file of the local tree that the target should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalObject {
    /// Its path relative to the repository root, which is its key under the prefix.
    pub(crate) key: String,
    /// Its path on disk.
    pub(crate) path: PathBuf,
    /// Its size.
    pub(crate) size: u64,
    /// Its phase.
    pub(crate) class: Class,
}

/// The class of a key of the published tree; `None` for what is never published.
pub(crate) fn classify(key: &str, origin: &str) -> Option<Class> {
    if key == format!("{origin}.asc") || key == format!("{origin}.gpg") {
        return Some(Class::Pool);
    }
    if dashboard::FILES.contains(&key) {
        return Some(Class::Dashboard);
    }
    let segments: Vec<&str> = key.split('/').collect();
    // Hidden names (temporary files, pool/.incoming) are never published.
    if segments
        .iter()
        .any(|segment| segment.is_empty() || segment.starts_with('.'))
    {
        return None;
    }
    match segments.as_slice() {
        ["pool", _, ..] => Some(Class::Pool),
        ["dists", _, rest @ ..] if !rest.is_empty() => {
            let name = rest.last().copied().unwrap_or_default();
            if rest.len() >= 3 && rest[rest.len() - 3] == "by-hash" {
                Some(Class::ByHash)
            } else if rest.len() == 1 && name == "InRelease" {
                Some(Class::InRelease)
            } else if rest.len() == 1 && (name == "Release" || name == "Release.gpg") {
                Some(Class::Release)
            } else {
                Some(Class::Index)
            }
        }
        _ => None,
    }
}

/// The files of the local tree at `root` a target holds: `pool/`, `dists/` and the
/// public key files, sorted by key.
pub(crate) fn local_objects(root: &Path, origin: &str) -> Result<Vec<LocalObject>> {
    let mut objects = Vec::new();
    for top in ["pool", "dists"] {
        let directory = root.join(top);
        if !directory.is_dir() {
            continue;
        }
        for entry in walkdir::WalkDir::new(&directory).sort_by_file_name() {
            let entry =
                entry.with_context(|| format!("{}: cannot be listed", directory.display()))?;
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(relative) = entry.path().strip_prefix(root) else {
                continue;
            };
            let key = relative.to_string_lossy().into_owned();
            let Some(class) = classify(&key, origin) else {
                continue;
            };
            let size = entry
                .metadata()
                .with_context(|| format!("{}: cannot be read", entry.path().display()))?
                .len();
            objects.push(LocalObject {
                key,
                path: entry.path().to_path_buf(),
                size,
                class,
            });
        }
    }
    let root_files = [format!("{origin}.asc"), format!("{origin}.gpg")]
        .into_iter()
        .chain(dashboard::FILES.map(str::to_string));
    for name in root_files {
        let Some(class) = classify(&name, origin) else {
            continue;
        };
        let path = root.join(&name);
        if let Ok(metadata) = std::fs::metadata(&path) {
            if metadata.is_file() {
                objects.push(LocalObject {
                    key: name,
                    path,
                    size: metadata.len(),
                    class,
                });
            }
        }
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(objects)
}

/// The Cache-Control header of an object: immutable objects for a year, the rest for
/// `index_max_age` seconds (the key files too: a key rotation must reach clients).
pub(crate) fn cache_control(class: Class, key: &str, index_max_age: u64) -> String {
    if (class == Class::Pool && key.starts_with("pool/")) || class == Class::ByHash {
        "public, max-age=31536000, immutable".to_string()
    } else {
        format!("public, max-age={index_max_age}")
    }
}

/// Whether an object gone from the local tree since publication `orphaned_publication`
/// at `orphaned_at` may leave the store now: after `generations` more publications of
/// the target and `grace` seconds, so that a client holding an older `InRelease` from
/// the store (or a CDN in front) still finds what it names.
pub(crate) fn due_for_deletion(
    orphaned: (i64, i64),
    now: i64,
    publications: i64,
    generations: usize,
    grace: u64,
) -> bool {
    let (orphaned_at, orphaned_publication) = orphaned;
    publications.saturating_sub(orphaned_publication) >= generations as i64
        && now.saturating_sub(orphaned_at) >= grace as i64
}

/// What the retention decides about the objects a target's record holds, against the
/// local tree of this publication.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Retention {
    /// Back in the local tree after it had left it: its mark is cleared.
    pub(crate) adopt: Vec<String>,
    /// Gone from the local tree in this publication: marked with its time and count.
    pub(crate) orphan: Vec<String>,
    /// To delete from the store now: indexes before the pool files they name.
    pub(crate) due: Vec<String>,
    /// Gone from the local tree and kept until its retention ends.
    pub(crate) retained: usize,
}

/// What to do with each recorded object (key and the publication it left the local tree
/// at, `(time, publication count)`), given the keys of the local tree, the time `now`,
/// the target's publication count including this one, and `[retention] generations` and
/// grace seconds: the arithmetic of [`due_for_deletion`] over the whole record.
pub(crate) fn retention<'a>(
    recorded: impl IntoIterator<Item = (&'a str, Option<(i64, i64)>)>,
    local: &std::collections::HashSet<&str>,
    now: i64,
    publications: i64,
    generations: usize,
    grace: u64,
) -> Retention {
    let mut retention = Retention::default();
    for (key, orphaned) in recorded {
        if local.contains(key) {
            if orphaned.is_some() {
                retention.adopt.push(key.to_string());
            }
            continue;
        }
        // Orphaned now when the record does not say it left before.
        let since = orphaned.unwrap_or((now, publications));
        if orphaned.is_none() {
            retention.orphan.push(key.to_string());
        }
        if due_for_deletion(since, now, publications, generations, grace) {
            retention.due.push(key.to_string());
        } else {
            retention.retained += 1;
        }
    }
    // Indexes before the pool files they name; the rest in key order.
    retention.due.sort_by(|left, right| {
        (left.starts_with("pool/"), left).cmp(&(right.starts_with("pool/"), right))
    });
    retention.adopt.sort();
    retention.orphan.sort();
    retention
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::http::content_type;

    #[test]
    fn classes_in_writing_order() {
        let origin = "acme";
        let cases = [
            ("pool/main/s/shop/shop_1_all.deb", Some(Class::Pool)),
            ("acme.asc", Some(Class::Pool)),
            ("other.asc", None),
            ("pool/.incoming/x.deb", None),
            (
                "dists/test/main/binary-amd64/by-hash/SHA256/ab12",
                Some(Class::ByHash),
            ),
            (
                "dists/test/main/binary-amd64/Packages.xz",
                Some(Class::Index),
            ),
            ("dists/test/Release", Some(Class::Release)),
            ("dists/test/Release.gpg", Some(Class::Release)),
            ("dists/test/InRelease", Some(Class::InRelease)),
            ("dists/test/main/binary-amd64/.debstage-tmp-1", None),
            ("state.db", None),
            ("private/signing-key.asc", None),
        ];
        for (key, class) in cases {
            assert_eq!(classify(key, origin), class, "{key}");
        }
        assert!(Class::Pool < Class::ByHash && Class::Release < Class::InRelease);
    }

    #[test]
    fn headers() {
        assert_eq!(
            cache_control(Class::Pool, "pool/main/a/a/a.deb", 60),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            cache_control(
                Class::ByHash,
                "dists/t/main/binary-all/by-hash/SHA256/00",
                60
            ),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            cache_control(Class::InRelease, "dists/t/InRelease", 60),
            "public, max-age=60"
        );
        assert_eq!(
            cache_control(Class::Pool, "acme.asc", 30),
            "public, max-age=30"
        );
        assert_eq!(
            content_type("pool/a.deb", b"!<arch>"),
            "application/vnd.debian.binary-package"
        );
        assert_eq!(
            content_type("dists/t/by-hash/SHA256/00", b"\x1f\x8b\x08"),
            "application/gzip"
        );
        assert_eq!(
            content_type("dists/t/by-hash/SHA256/00", b"\xfd7zXZ\x00"),
            "application/x-xz"
        );
        assert_eq!(
            content_type("dists/t/by-hash/SHA256/00", b"Package: a"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type("dists/t/Release.gpg", b"-----"),
            "application/pgp-signature"
        );
        assert_eq!(content_type("acme.asc", b"-----"), "application/pgp-keys");
    }

    #[test]
    fn deletion_waits_for_publications_and_time() {
        // Orphaned at publication 4, at time 1000; 3 generations, grace 3600 s.
        let orphaned = (1000, 4);
        assert!(!due_for_deletion(orphaned, 10_000, 6, 3, 3600));
        assert!(!due_for_deletion(orphaned, 4000, 7, 3, 3600));
        assert!(due_for_deletion(orphaned, 4600, 7, 3, 3600));
    }

    #[test]
    fn retention_orphans_keeps_and_deletes_by_generations_and_grace() {
        let local: std::collections::HashSet<&str> =
            ["pool/a.deb", "dists/t/InRelease"].into_iter().collect();
        let recorded = [
            // In the local tree: nothing to do.
            ("pool/a.deb", None),
            // Back in the local tree after leaving it: adopted.
            ("dists/t/InRelease", Some((100, 1))),
            // Left in this publication (6, at time 5000): orphaned and kept.
            ("dists/t/by-hash/SHA512/new", None),
            // Left at publication 2 at time 1000: 4 generations and 4000 s ago, due.
            ("pool/old.deb", Some((1000, 2))),
            ("dists/t/by-hash/SHA512/old", Some((1000, 2))),
            // Left at publication 4: 2 generations ago, kept.
            ("dists/t/by-hash/SHA512/recent", Some((1000, 4))),
        ];
        let retention = retention(recorded, &local, 5000, 6, 3, 3600);
        assert_eq!(
            retention,
            Retention {
                adopt: vec!["dists/t/InRelease".to_string()],
                orphan: vec!["dists/t/by-hash/SHA512/new".to_string()],
                due: vec![
                    "dists/t/by-hash/SHA512/old".to_string(),
                    "pool/old.deb".to_string()
                ],
                retained: 2,
            }
        );
        // Within the grace period nothing goes, however many publications passed.
        let early = super::retention(recorded, &local, 1100, 60, 3, 3600);
        assert!(early.due.is_empty());
        assert_eq!(early.retained, 4);
        // No generations kept and no grace: what left goes at once, orphaned or not.
        let at_once = super::retention(recorded, &local, 5000, 6, 0, 0);
        assert_eq!(at_once.due.len(), 4);
        assert_eq!(at_once.retained, 0);
    }
}
