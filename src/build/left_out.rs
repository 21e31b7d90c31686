//! What is never part of the application, whatever `[files] include` says with patterns:
//! the manifest itself (`debstage.toml` at the top of the release), `.git` (a directory,
//! or the file of a submodule or work tree), `.env` and `.env.*` files (secrets that would
//! be world-readable under `/opt`), and the build's own `--out` directory when it lies
//! inside the staged tree (each build would package the one before), and cache
//! directories marked with a `CACHEDIR.TAG` (the Cache Directory Tagging convention:
//! cargo's `target/`, and the caches of other tools that follow it), which hold build
//! output and never the application.
//!
//! A path written out in `[files] include` without wildcards (`.env.defaults`) is named,
//! and ships; the `--out` directory never does. The build says what it left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::build::manifest::LoadedManifest;

/// The rule, for one staged tree, and what it has left out so far.
#[derive(Debug)]
pub(crate) struct LeftOut {
    /// The staged tree.
    root: PathBuf,
    /// `--out` relative to the staged tree, when it is inside it.
    out: Option<PathBuf>,
    /// Paths `[files] include` names literally.
    named: BTreeSet<PathBuf>,
    /// What was left out, as shown to the user.
    seen: Mutex<BTreeSet<String>>,
}

impl LeftOut {
    /// The rule for the staged tree at `root` of `manifest`, built into `out`.
    pub(crate) fn new(manifest: &LoadedManifest, root: &Path, out: &Path) -> LeftOut {
        let out = match (std::fs::canonicalize(root), absolute(out)) {
            (Ok(root), Some(out)) => out
                .strip_prefix(&root)
                .ok()
                .filter(|relative| !relative.as_os_str().is_empty())
                .map(Path::to_path_buf),
            _ => None,
        };
        let named = manifest
            .manifest
            .files
            .include
            .iter()
            .filter(|pattern| !pattern.contains(['*', '?', '[', '{']))
            .map(|pattern| PathBuf::from(pattern.trim_start_matches("./")))
            .collect();
        LeftOut {
            root: root.to_path_buf(),
            out,
            named,
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// Whether `relative` (a path of the staged tree) is left out; remembers it.
    pub(crate) fn excludes(&self, relative: &Path, is_dir: bool) -> bool {
        if self.out.as_deref() == Some(relative) {
            self.remember(format!("{}/ (the --out directory)", relative.display()));
            return true;
        }
        let Some(name) = relative.file_name().and_then(|name| name.to_str()) else {
            return false;
        };
        if is_dir && is_cache_directory(&self.root.join(relative)) && !self.named.contains(relative)
        {
            self.remember(format!(
                "{}/ (a cache directory: it has a CACHEDIR.TAG)",
                relative.display()
            ));
            return true;
        }
        let left_out = name == ".git"
            || (!is_dir && (name == ".env" || name.starts_with(".env.")))
            || (!is_dir && relative == Path::new("debstage.toml"));
        if !left_out || self.named.contains(relative) {
            return false;
        }
        let suffix = if is_dir { "/" } else { "" };
        self.remember(format!("{}{suffix}", relative.display()));
        true
    }

    fn remember(&self, text: String) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(text);
        }
    }

    /// What was left out, in path order.
    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|seen| seen.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The first bytes of a `CACHEDIR.TAG` file, by the Cache Directory Tagging convention.
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Whether `directory` holds a `CACHEDIR.TAG` that starts with the convention's signature.
fn is_cache_directory(directory: &Path) -> bool {
    let mut start = [0u8; CACHEDIR_SIGNATURE.len()];
    std::fs::File::open(directory.join("CACHEDIR.TAG"))
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut start))
        .is_ok_and(|()| start == CACHEDIR_SIGNATURE)
}

/// `path` made absolute without requiring it to exist (an `--out` not yet created).
fn absolute(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = std::fs::canonicalize(path) {
        return Some(real);
    }
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty());
    let parent = match parent {
        Some(parent) => absolute(parent)?,
        None => std::env::current_dir().ok()?,
    };
    Some(parent.join(path.file_name()?))
}
