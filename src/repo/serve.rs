//! `repo serve`: static HTTP of the published tree, loopback by default.
