//! `debstage init`: writes a commented `debstage.toml` and an example activation hook,
//! from `debian-skel/` (compiled into the binary), into an application directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::InitOptions;
use crate::debian::names;
use crate::report::Reporter;

const MANIFEST: &str = include_str!("../../debian-skel/debstage.toml");
const HOOK: &str = include_str!("../../debian-skel/hooks/activate");

/// Writes the skeleton into the application directory.
pub(crate) fn run(options: &InitOptions, reporter: &Reporter) -> Result<()> {
    let directory = &options.directory;
    if !directory.is_dir() {
        bail!("{}: no such directory", directory.display());
    }
    let name = match &options.name {
        Some(name) => name.clone(),
        None => directory
            .canonicalize()
            .ok()
            .and_then(|path| {
                path.file_name()
                    .map(|name| name.to_string_lossy().to_lowercase())
            })
            .unwrap_or_default(),
    };
    names::check_package_name(&name).map_err(|message| {
        anyhow::anyhow!("application name {name:?} {message}; choose one with --name")
    })?;
    let manifest = directory.join("debstage.toml");
    if manifest.exists() && !options.force {
        bail!(
            "{}: already exists (use --force to replace it)",
            manifest.display()
        );
    }
    write_file(&manifest, &MANIFEST.replace("{{name}}", &name), 0o644)?;
    let hook = directory.join("hooks/activate");
    if hook.exists() {
        reporter.status(format!("kept {}", hook.display()));
    } else {
        fs::create_dir_all(directory.join("hooks"))?;
        write_file(&hook, HOOK, 0o755)?;
    }
    reporter.status(format!(
        "wrote {} for {name}; next: debstage build --manifest {}",
        manifest.display(),
        manifest.display()
    ));
    Ok(())
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("{}: cannot be written", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("{}: cannot be written", path.display()))
}
