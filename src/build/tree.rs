//! The release tree as the packages hold it: the listing of the staged directory (with
//! the manifest's `[files]` rules, modes and owners), the activation hook added to it,
//! the programs the manifest names checked against it, a layer's tree, and the newest
//! input time that dates a build without `SOURCE_DATE_EPOCH`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::build::manifest::{CommandLine, LoadedManifest};
use crate::build::{exclusions, left_out, manifest};
use crate::deb::{Content, Entry};

pub(super) fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The newest modification time among the application's files (the manifest's directory,
/// without the output directory and `.git`), links not followed. Read before the
/// environment is staged, it is the same for two builds of the same input however long
/// apart, whatever the python or command environment generates. An environment command
/// that writes into the application directory changes it: set SOURCE_DATE_EPOCH then.
pub(super) fn newest_input_mtime(directory: &Path, out: &Path) -> Result<u64> {
    let out = fs::canonicalize(out).ok();
    let mut newest = 0u64;
    let walk = walkdir::WalkDir::new(directory)
        .follow_links(false)
        .into_iter()
        .filter_entry(|entry| {
            let is_out = || {
                entry.file_type().is_dir()
                    && out.is_some()
                    && fs::canonicalize(entry.path()).ok() == out
            };
            entry.file_name() != ".git" && !is_out()
        });
    for entry in walk {
        let entry = entry.with_context(|| format!("{}: cannot be listed", directory.display()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let metadata = entry
            .metadata()
            .with_context(|| format!("{}: cannot be read", entry.path().display()))?;
        newest = newest.max(metadata.mtime().max(0) as u64);
    }
    Ok(newest)
}

/// Without SOURCE_DATE_EPOCH the newest input file sets the time, so that the same input
/// still gives the same bytes.
pub(super) fn newest_mtime(tree: &[TreeItem], manifest: &Path) -> u64 {
    let manifest_mtime = fs::metadata(manifest)
        .map(|metadata| metadata.mtime().max(0) as u64)
        .unwrap_or(0);
    tree.iter()
        .filter_map(|item| item.entry.mtime)
        .chain([manifest_mtime])
        .max()
        .unwrap_or(0)
}

/// One listed file of the staged tree.
pub(super) struct TreeItem {
    /// The path relative to the release directory.
    pub(super) relative: String,
    /// The data entry, installed under the release directory.
    pub(super) entry: Entry,
}

/// The globs of `[files]` include or exclude as one set, matched against paths relative to
/// the release directory.
pub(super) fn glob_set(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(Glob::new(pattern)?);
    }
    Ok(builder.build()?)
}

/// Lists the staged tree under the release directory, applying `[files]` include and
/// exclude globs (an excluded directory is skipped whole).
pub(super) fn list_tree(manifest: &LoadedManifest, root: &Path, out: &Path) -> Result<ListedTree> {
    let listing = Listing {
        root,
        left_out: left_out::LeftOut::new(manifest, root, out),
        include: glob_set(&manifest.manifest.files.include)?,
        exclude: glob_set(&manifest.manifest.files.exclude)?,
        defaults: exclusions::Exclusions::of(manifest),
        by_default: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        prefix: manifest
            .names()
            .release_dir()
            .trim_start_matches('/')
            .to_string(),
    };
    let items = listing.directory(Path::new(""))?;
    let by_default = listing
        .by_default
        .lock()
        .map(|counts| {
            manifest::KeptGroup::ALL
                .iter()
                .filter_map(|group| {
                    let count = counts.get(group.name())?;
                    Some(format!("{} ({count})", group.name()))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut notes = Vec::new();
    if !by_default.is_empty() {
        notes.push(format!(
            "Left out by default (name the group in [files] keep to ship it): {}",
            by_default.join(", ")
        ));
    }
    let left_out = listing.left_out.seen();
    if !left_out.is_empty() {
        notes.push(format!(
            "Left out of the release (not the application; name a file in [files] include \
             to ship it): {}",
            left_out.join(", ")
        ));
    }
    if !items
        .iter()
        .any(|item| !matches!(item.entry.content, Content::Directory))
    {
        bail!(
            "{}: the staged tree {} holds no file after [files] include/exclude",
            manifest.path.display(),
            root.display()
        );
    }
    Ok(ListedTree { items, notes })
}

/// The staged tree as [`list_tree`] found it, and what it says about what it left out
/// (for the caller to report).
pub(super) struct ListedTree {
    pub(super) items: Vec<TreeItem>,
    pub(super) notes: Vec<String>,
}

/// What listing the staged tree needs at every directory.
pub(super) struct Listing<'a> {
    root: &'a Path,
    include: GlobSet,
    exclude: GlobSet,
    /// What the build leaves out by default (`[files] keep` brings groups back).
    defaults: exclusions::Exclusions,
    /// How many entries each default group left out, by the group's name.
    by_default: std::sync::Mutex<std::collections::BTreeMap<&'static str, usize>>,
    /// What is never the application (the manifest, `.git`, `.env` files, `--out`).
    left_out: left_out::LeftOut,
    /// The release directory without its leading `/`.
    prefix: String,
}

impl Listing<'_> {
    /// Whether a default group leaves `relative` out; counts it for the build's summary.
    fn left_out_by_default(&self, relative: &Path, is_dir: bool) -> bool {
        let Some(group) = self.defaults.group_of(self.root, relative, is_dir) else {
            return false;
        };
        if let Ok(mut counts) = self.by_default.lock() {
            *counts.entry(group.name()).or_default() += 1;
        }
        true
    }

    /// The items under `relative` (a directory of the tree, `""` for its root), each
    /// directory followed by its contents, names in byte order.
    ///
    /// Directories are listed on every core, and each entry's metadata is read relative
    /// to its open directory (`DirEntry::metadata`), not by walking its whole path again
    /// (about twice as fast as walkdir with `symlink_metadata`; bench/NOTES.md).
    fn directory(&self, relative: &Path) -> Result<Vec<TreeItem>> {
        let path = if relative.as_os_str().is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(relative)
        };
        let cannot_list = || format!("{}: cannot be listed", path.display());
        let mut entries = std::fs::read_dir(&path)
            .with_context(cannot_list)?
            .collect::<std::io::Result<Vec<_>>>()
            .with_context(cannot_list)?;
        entries.sort_by_key(|entry| entry.file_name());
        // Each entry keeps its directory open; the metadata is read while it is, and the
        // entries are dropped before the listing descends, so that open directories do not
        // pile up with the depth of the tree.
        let children: Vec<(std::ffi::OsString, std::io::Result<std::fs::Metadata>)> = entries
            .par_iter()
            .map(|entry| (entry.file_name(), entry.metadata()))
            .collect();
        drop(entries);
        let listed = children
            .into_par_iter()
            .map(|(name, metadata)| self.entry(&relative.join(name), metadata))
            .collect::<Vec<Result<Vec<TreeItem>>>>();
        let mut items = Vec::new();
        for child_items in listed {
            items.extend(child_items?);
        }
        Ok(items)
    }

    /// The item of one directory entry (none when the globs leave it out), and for a
    /// directory everything beneath it. `metadata` is the entry's own, not its target's.
    fn entry(
        &self,
        relative: &Path,
        metadata: std::io::Result<std::fs::Metadata>,
    ) -> Result<Vec<TreeItem>> {
        let path = self.root.join(relative);
        let relative_text = relative
            .to_str()
            .with_context(|| format!("{}: file names must be UTF-8", path.display()))?
            .to_string();
        if relative_text.contains('\n') || relative_text.contains('\\') {
            bail!(
                "{}: file names may not contain newlines or backslashes",
                path.display()
            );
        }
        let metadata = metadata.with_context(|| format!("{}: cannot be read", path.display()))?;
        let kind = metadata.file_type();
        if self.exclude.is_match(relative)
            || self.left_out_by_default(relative, kind.is_dir())
            || self.left_out.excludes(relative, kind.is_dir())
        {
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        let content = if kind.is_dir() {
            // Directories are kept when something inside them is; empty ones when included
            // (unless the default exclusions emptied them).
            let below = self.directory(relative)?;
            let emptied = below.is_empty() && self.defaults.drops_when_empty(self.root, relative);
            if !emptied
                && (self.include.is_match(relative) || self.include.is_match(relative.join("x")))
            {
                items.push(self.item(relative_text, &metadata, Content::Directory));
            }
            items.extend(below);
            return Ok(items);
        } else if !self.include.is_match(relative) {
            return Ok(items);
        } else if kind.is_symlink() {
            let target = fs_err::read_link(&path)?;
            Content::Symlink(target.into_os_string().into_encoded_bytes())
        } else if kind.is_file() {
            Content::File {
                source: path,
                size: metadata.len(),
            }
        } else {
            bail!(
                "{}: only regular files, directories and symbolic links can be packaged",
                path.display()
            );
        };
        items.push(self.item(relative_text, &metadata, content));
        Ok(items)
    }

    fn item(&self, relative: String, metadata: &std::fs::Metadata, content: Content) -> TreeItem {
        TreeItem {
            entry: Entry {
                path: format!("{}/{relative}", self.prefix),
                mode: metadata.permissions().mode() & 0o7777,
                mtime: Some(metadata.mtime().max(0) as u64),
                content,
            },
            relative,
        }
    }
}

/// Ships the activation hook whatever the environment kind: a relative hook that the
/// staged tree lacks (a python or command environment, or a `dir` whose source is a
/// subdirectory) is taken from the application directory, at the same relative path.
pub(super) fn add_activation_hook(
    manifest: &LoadedManifest,
    tree: &mut Vec<TreeItem>,
) -> Result<()> {
    let Some(hook) = &manifest.activate_hook else {
        return Ok(());
    };
    if hook.program.starts_with('/') || tree.iter().any(|item| item.relative == hook.program) {
        return Ok(());
    }
    let source = manifest.directory.join(&hook.program);
    let Ok(metadata) = fs::metadata(&source) else {
        // check_referenced_programs names the key.
        return Ok(());
    };
    if !metadata.is_file() {
        return Ok(());
    }
    let prefix = manifest
        .names()
        .release_dir()
        .trim_start_matches('/')
        .to_string();
    let relative = Path::new(&hook.program);
    let mut parents: Vec<&Path> = relative
        .ancestors()
        .skip(1)
        .filter(|parent| !parent.as_os_str().is_empty())
        .collect();
    parents.reverse();
    for parent in parents {
        let text = parent.to_string_lossy().into_owned();
        if tree.iter().any(|item| item.relative == text) {
            continue;
        }
        tree.push(TreeItem {
            entry: Entry {
                path: format!("{prefix}/{text}"),
                mode: 0o755,
                mtime: Some(metadata.mtime().max(0) as u64),
                content: Content::Directory,
            },
            relative: text,
        });
    }
    tree.push(TreeItem {
        entry: Entry {
            path: format!("{prefix}/{}", hook.program),
            mode: metadata.permissions().mode() & 0o7777,
            mtime: Some(metadata.mtime().max(0) as u64),
            content: Content::File {
                source,
                size: metadata.len(),
            },
        },
        relative: hook.program.clone(),
    });
    Ok(())
}

/// The hook, health check and service program must be in the tree (and executable).
pub(super) fn check_referenced_programs(
    manifest: &LoadedManifest,
    tree: &[TreeItem],
) -> Result<()> {
    let checks: [(&str, Option<&CommandLine>); 3] = [
        ("[hooks] activate", manifest.activate_hook.as_ref()),
        ("[service.health] command", manifest.health_command.as_ref()),
        ("[service] command", manifest.service_command.as_ref()),
    ];
    for (key, command) in checks {
        let Some(command) = command else { continue };
        if command.program.starts_with('/') {
            continue;
        }
        let found = tree.iter().find(|item| item.relative == command.program);
        match found {
            Some(item)
                if item.entry.mode & 0o111 != 0
                    || matches!(item.entry.content, Content::Symlink(_)) => {}
            Some(_) => {
                return Err(manifest
                    .error(
                        key,
                        format!("{:?} is in the release but not executable", command.program),
                    )
                    .into())
            }
            None => {
                return Err(manifest
                    .error(
                        key,
                        format!("{:?} is not in the release directory", command.program),
                    )
                    .into())
            }
        }
    }
    Ok(())
}

/// The entries of a layer's tree, installed under `directory`, in path order.
pub(super) fn list_layer(root: &Path, directory: &str) -> Result<Vec<TreeItem>> {
    let prefix = directory.trim_start_matches('/');
    let mut items = Vec::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.with_context(|| format!("{}: cannot be listed", root.display()))?;
        let relative = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        let metadata = fs_err::symlink_metadata(entry.path())?;
        let kind = metadata.file_type();
        let content = if kind.is_dir() {
            Content::Directory
        } else if kind.is_symlink() {
            let target = fs_err::read_link(entry.path())?;
            Content::Symlink(target.into_os_string().into_encoded_bytes())
        } else if kind.is_file() {
            Content::File {
                source: entry.path().to_path_buf(),
                size: metadata.len(),
            }
        } else {
            bail!(
                "{}: only regular files, directories and symbolic links can be packaged",
                entry.path().display()
            );
        };
        items.push(TreeItem {
            entry: Entry {
                path: format!("{prefix}/{relative}"),
                mode: metadata.permissions().mode() & 0o7777,
                mtime: Some(metadata.mtime().max(0) as u64),
                content,
            },
            relative,
        });
    }
    Ok(items)
}
