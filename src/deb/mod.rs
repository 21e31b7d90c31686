//! The `.deb` format: writing packages from a list of entries, and reading them back.
//!
//! A package is written in two passes over its files, side by side: one (on every core)
//! collects the md5sums and Installed-Size for `control.tar`; the other streams `data.tar`
//! through the compressor, first into a spool, then, once `control.tar` is written, straight
//! into the package ([`pending`]), beside the target, which is renamed into place when
//! complete.

pub(crate) mod ar;
pub(crate) mod compress;
mod entry;
pub(crate) mod md5sums;
mod members;
pub(crate) mod pending;
pub(crate) mod read;
pub(crate) mod tar;

use std::path::Path;

use anyhow::Result;

use self::compress::Settings;
pub(crate) use self::entry::{Content, Entry};
pub(crate) use self::md5sums::FileDigests;
pub(crate) use self::members::{ControlMember, WrittenPackage};
pub(crate) use self::pending::{DataSpec, PendingPackage};
use crate::debian::control::Control;

/// Everything needed to write one package.
#[derive(Debug, Clone)]
pub(crate) struct PackageSpec {
    /// The control fields; Installed-Size is added by the writer.
    pub(crate) control: Control,
    /// The data entries, in any order; missing parent directories are added.
    pub(crate) entries: Vec<Entry>,
    /// Maintainer scripts (mode 0755 in `control.tar`).
    pub(crate) scripts: Vec<ControlMember>,
    /// Compressor settings of both members.
    pub(crate) compression: Settings,
    /// The mtime of the headers and the latest mtime of any entry (SOURCE_DATE_EPOCH).
    pub(crate) mtime: u64,
    /// MD5s of file entries computed beforehand (see [`md5sums::digest_entries`]); the
    /// writer computes the others.
    pub(crate) digests: FileDigests,
    /// Advanced by the bytes of each file handed to the compressor (a hidden bar when
    /// nobody watches).
    pub(crate) progress: indicatif::ProgressBar,
}

impl PackageSpec {
    /// A package of `entries` and `scripts`, with no MD5s computed beforehand and no
    /// progress shown.
    pub(crate) fn new(
        control: Control,
        entries: Vec<Entry>,
        scripts: Vec<ControlMember>,
        compression: Settings,
        mtime: u64,
    ) -> PackageSpec {
        PackageSpec {
            control,
            entries,
            scripts,
            compression,
            mtime,
            digests: FileDigests::default(),
            progress: indicatif::ProgressBar::hidden(),
        }
    }
}

/// Writes the package into `directory` under its Debian file name.
pub(crate) fn write_package(spec: &PackageSpec, directory: &Path) -> Result<WrittenPackage> {
    let data = DataSpec {
        entries: spec.entries.clone(),
        compression: spec.compression,
        mtime: spec.mtime,
        progress: spec.progress.clone(),
    };
    PendingPackage::start(data, directory)?.finish(&spec.control, &spec.scripts, &spec.digests)
}
