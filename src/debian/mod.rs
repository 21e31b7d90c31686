//! Debian's formats and rules, shared by the build and the repository: version ordering,
//! control paragraphs, Release files, digests and architecture names.

pub(crate) mod apt_sources;
pub(crate) mod changelog;
pub(crate) mod control;
pub(crate) mod digests;
pub(crate) mod names;
pub(crate) mod release;
pub(crate) mod version;
