//! Debian's formats and rules, shared by the build and the repository: version ordering,
//! control paragraphs, Release files, digests and architecture names.

pub mod control;
pub mod digests;
pub mod names;
pub mod release;
pub mod version;
