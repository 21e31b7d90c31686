//! `debstage-repo.toml`: origin, label, stages in order, architectures, signing key.
