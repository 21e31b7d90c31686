//! The one copy of a directory tree the build makes (an application into the release,
//! a project into scratch space for pip): directories, regular files and symbolic links
//! (copied as links, never followed), in name order, with the caller deciding what is
//! left out and whether a file may land on something already there.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use walkdir::{DirEntry, WalkDir};

/// What to do when a file or link of the source lands where the destination already
/// has something (a directory that exists already is merged into).
pub(crate) enum Existing<'a> {
    /// Replace it (or fail where the file system refuses).
    Replace,
    /// Refuse with the error this gives for the path relative to the source.
    Refuse(&'a dyn Fn(&Path) -> anyhow::Error),
}

/// Copies the tree under `source` into `destination` (made as needed). `keep` sees every
/// entry below `source`; an entry it refuses is left out, a directory with everything in
/// it. Anything but a directory, a regular file or a symbolic link is an error naming it.
pub(crate) fn copy_tree(
    source: &Path,
    destination: &Path,
    mut keep: impl FnMut(&DirEntry) -> bool,
    existing: Existing<'_>,
) -> Result<()> {
    let walk = WalkDir::new(source)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| keep(entry));
    fs_err::create_dir_all(destination)?;
    for entry in walk {
        let entry = entry.with_context(|| format!("{}: cannot be read", source.display()))?;
        let relative = entry.path().strip_prefix(source).unwrap_or(entry.path());
        let target = destination.join(relative);
        let file_type = entry.file_type();
        if file_type.is_dir() {
            fs_err::create_dir_all(&target)?;
            continue;
        }
        if let Existing::Refuse(refusal) = &existing {
            if fs::symlink_metadata(&target).is_ok() {
                return Err(refusal(relative));
            }
        }
        if file_type.is_symlink() {
            let link = fs_err::read_link(entry.path())?;
            std::os::unix::fs::symlink(&link, &target)
                .with_context(|| format!("{}: cannot be created", target.display()))?;
        } else if file_type.is_file() {
            fs::copy(entry.path(), &target).with_context(|| {
                format!(
                    "{}: cannot be copied to {}",
                    entry.path().display(),
                    target.display()
                )
            })?;
        } else {
            bail!(
                "{}: only regular files, directories and symbolic links can be packaged",
                entry.path().display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_links_and_directories_leaving_out_what_keep_refuses() {
        let temp = tempfile::tempdir().expect("temporary directory");
        let source = temp.path().join("source");
        fs::create_dir_all(source.join("package/skipped")).expect("directories");
        fs::write(source.join("package/module.py"), b"x = 1\n").expect("file");
        fs::write(source.join("package/skipped/big"), b"no").expect("file");
        std::os::unix::fs::symlink("package/module.py", source.join("link")).expect("link");
        let destination = temp.path().join("destination");
        copy_tree(
            &source,
            &destination,
            |entry| entry.file_name() != "skipped",
            Existing::Replace,
        )
        .expect("copy");
        assert_eq!(
            fs::read(destination.join("package/module.py")).expect("copied"),
            b"x = 1\n"
        );
        assert_eq!(
            fs::read_link(destination.join("link")).expect("a link"),
            Path::new("package/module.py")
        );
        assert!(!destination.join("package/skipped").exists());

        // Refused collisions name the path; a directory that exists is merged into.
        let refusal = |relative: &Path| anyhow::anyhow!("{} is there", relative.display());
        let error = copy_tree(&source, &destination, |_| true, Existing::Refuse(&refusal))
            .expect_err("module.py exists");
        assert_eq!(error.to_string(), "link is there");
    }

    #[test]
    fn a_fifo_is_refused_by_name() {
        let temp = tempfile::tempdir().expect("temporary directory");
        let source = temp.path().join("source");
        fs::create_dir_all(&source).expect("directory");
        let fifo = source.join("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
        let error = copy_tree(
            &source,
            &temp.path().join("out"),
            |_| true,
            Existing::Replace,
        )
        .expect_err("a fifo");
        assert!(
            error.to_string().contains("pipe: only regular files"),
            "{error}"
        );
    }
}
