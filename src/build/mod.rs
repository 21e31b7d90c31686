//! The build pipeline: manifest -> staged tree -> payload and stage packages -> build
//! manifest.
//!
//! Everything that can fail on the user's input is checked before anything is written;
//! the packages are written into a temporary directory beside `--out` and moved there
//! only when all of them are complete, so a failed build leaves `--out` as it was.

pub(crate) mod depends;
pub(crate) mod env;
pub(crate) mod exclusions;
pub(crate) mod init;
pub(crate) mod left_out;
pub(crate) mod manifest;
pub(crate) mod request;
pub(crate) mod root;
pub(crate) mod runner;
pub(crate) mod scripts;
pub(crate) mod strip;
pub(crate) mod tree_copy;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::build::depends::{elf, shlibs};
use crate::build::env::python_layer::LAYER_EPOCH;
use crate::build::manifest::{CommandLine, Environment, LoadedManifest};
use crate::build::request::BuildRequest;
use crate::build::runner::{Runner, SystemRoot};
use crate::build::scripts::{DocumentContext, OverridesContext, PayloadContext, StageContext};
use crate::deb::compress::{self, Settings};
use crate::deb::{self, Content, ControlMember, Entry, FileDigests, PackageSpec, WrittenPackage};
use crate::debian::control::{self, Control};
use crate::naming::build_manifest::{BuildManifest, BuiltPackage, Provenance};
use crate::naming::{layer_version, Role};
use crate::report::Reporter;

/// Lintian tags that an `/opt` bundle raises by design, shipped as overrides.
/// Tags of the payload that the design raises:
/// - `dir-or-file-in-opt`: the release directory lives in `/opt/<app>/<version>`;
/// - `initial-upload-closes-no-bugs`: the version is part of the payload's name, so every
///   release is a new package whose changelog has one entry, and no ITP bug exists to close
///   (lintian raises it only for revision 1);
/// - `missing-intermediate-directory`: `/opt` is not shipped, because base-files makes it
///   and a package that owned it would take it away when purged (piuparts).
const PAYLOAD_OVERRIDES: &[&str] = &[
    "dir-or-file-in-opt",
    "initial-upload-closes-no-bugs",
    "missing-intermediate-directory",
];

/// Tags of a stage package that the design raises: it ships the apt pin that makes its
/// suite the source of truth for the host (DESIGN.md, "On a server"); its postinst reads
/// the unit's state with `systemctl show` during the settle period (read-only, no
/// deb-systemd-* helper offers it; restarts still go through deb-systemd-invoke).
const STAGE_OVERRIDES: &[&str] = &[
    "package-installs-apt-preferences",
    "maintainer-script-calls-systemctl",
];

/// Builds every package of the manifest into `--out`, once per target (`--target`), and
/// prints what was written: the build manifest of one build, or with `--target all` the
/// build manifests of every target (in JSON, as `builds`).
pub(crate) fn run(options: &BuildRequest, reporter: &Reporter) -> Result<Vec<BuildManifest>> {
    let loaded = manifest::load(
        &options.manifest,
        options.version.as_deref(),
        options.revision.as_deref(),
    )?;
    let targets = loaded.targets(options.target.as_deref())?;
    let mut builds = Vec::new();
    let mut text = String::new();
    let mut documents = Vec::new();
    for target in targets {
        let loaded = loaded.for_target(target);
        let (build_manifest, build_text, document) = build_one(&loaded, options, reporter)?;
        builds.push(build_manifest);
        text.push_str(&build_text);
        documents.push(document);
    }
    // `--target all` asks for a list, and gets one even when the list holds one build.
    let document = match documents.as_slice() {
        [single] if options.target.as_deref() != Some("all") => single.clone(),
        // data() adds the schema version.
        _ => serde_json::json!({ "builds": documents }),
    };
    reporter.data(text, &document)?;
    Ok(builds)
}

/// One build: the packages of `loaded` (for its target) written into `--out`; gives the
/// build manifest, the text lines and the JSON document that report it.
fn build_one(
    loaded: &LoadedManifest,
    options: &BuildRequest,
    reporter: &Reporter,
) -> Result<(BuildManifest, String, serde_json::Value)> {
    let settings = Settings {
        compression: options.compress,
        level: options.level,
        threads: compress::available_threads(),
    };
    settings.check().map_err(anyhow::Error::msg)?;
    // Without SOURCE_DATE_EPOCH the inputs set the time. A `dir` environment's tree is its
    // input, and listing it reads its times anyway; a generated tree is not, so the
    // application's files are read before the environment runs and writes anything.
    let source_date = crate::source_date::choose(&loaded.directory, &options.out)?;
    let generated = !matches!(loaded.manifest.environment, Environment::Dir(_));
    let inputs_mtime = match source_date.epoch {
        None if generated => newest_input_mtime(&loaded.directory, &options.out)?,
        _ => 0,
    };
    let target = loaded
        .target
        .map(|target| format!(" for {target}"))
        .unwrap_or_default();
    reporter.status(format!(
        "Building {} {} ({} environment){target}",
        loaded.app(),
        loaded.names().debian_version(),
        loaded.manifest.environment.kind()
    ));

    report_source_date(&source_date, reporter);

    // A build for a distribution runs in its build root, held until the build ends.
    let build_root = match loaded.target {
        Some(target) => {
            let mut packages = env::root_packages(&loaded.manifest.environment);
            packages.extend(loaded.manifest.build.packages.iter().cloned());
            Some(root::prepare(loaded, target, &packages, reporter)?)
        }
        None => None,
    };
    let runner = match &build_root {
        Some(build_root) => build_root.runner(loaded)?,
        None => Runner::Host,
    };
    let scratch = runner.scratch()?;
    let (staged, layer) = env::stage(loaded, &runner, scratch.path(), &options.out, reporter)?;
    let mut tree = list_tree(loaded, &staged.root, &options.out, reporter)?;
    add_activation_hook(loaded, &mut tree)?;
    check_referenced_programs(loaded, &tree)?;
    let stripped = strip_release(loaded, &mut tree, scratch.path(), reporter)?;
    let epoch = source_date.epoch.unwrap_or_else(|| {
        if generated {
            inputs_mtime
        } else {
            newest_mtime(&tree, &loaded.path)
        }
    });

    let Analysed {
        entries,
        digests,
        architecture,
        depends,
    } = analyse(
        loaded,
        &loaded.names().release_dir(),
        tree,
        &staged.depends,
        &runner.system_root(),
    )?;

    let work = work_directory(&options.out)?;
    let layer = match &layer {
        Some(layer) => Some(write_layer(
            loaded,
            layer,
            &runner.system_root(),
            settings,
            &options.out,
            work.path(),
            reporter,
        )?),
        None => None,
    };

    let mut payload_spec = payload_spec(
        loaded,
        entries,
        &architecture,
        &depends,
        &stripped.lintian_overrides(),
        settings,
        epoch,
    )?;
    payload_spec.digests = digests;
    // A bar of the bytes handed to the compressor, on a terminal only.
    let total = payload_spec
        .entries
        .iter()
        .filter_map(Entry::file_size)
        .sum();
    payload_spec.progress = reporter.progress_bytes(total, "compressing");
    let dbgsym_spec = dbgsym_spec(loaded, &stripped, &architecture, settings, epoch);
    let written = write_packages(
        loaded,
        &payload_spec,
        dbgsym_spec.as_ref(),
        settings,
        epoch,
        work.path(),
    )?;
    payload_spec.progress.finish_and_clear();
    let provenance = Provenance {
        source_date: epoch,
        source_date_rule: source_date.rule,
        git_commit: source_date.commit.clone(),
        git_dirty: source_date.dirty,
        git_branch: source_date.branch.clone(),
        build_host: Some(crate::host::name()),
        debstage_version: Some(env!("CARGO_PKG_VERSION").to_string()),
    };
    let build_manifest = build_manifest(loaded, written, layer, provenance, reporter);
    let manifest_name = loaded.names().build_manifest_file();
    let mut json = serde_json::to_vec_pretty(&build_manifest)?;
    json.push(b'\n');
    fs::write(work.path().join(&manifest_name), &json)?;

    move_into(&options.out, work.path(), &build_manifest, &manifest_name)?;
    drop(staged);
    let (text, document) = written_output(&options.out, &build_manifest, &manifest_name)?;
    Ok((build_manifest, text, document))
}

/// Says where the packages' time comes from when SOURCE_DATE_EPOCH does not give it.
fn report_source_date(source_date: &crate::source_date::SourceDate, reporter: &Reporter) {
    use crate::source_date::Rule;
    let short = |commit: &str| commit.chars().take(12).collect::<String>();
    match (source_date.rule, &source_date.commit, source_date.dirty) {
        (Rule::SourceDateEpoch, _, _) => {}
        (Rule::GitCommit, commit, _) => reporter.status(format!(
            "Time of the packages: the last commit touching the application directory \
             (HEAD {})",
            commit.as_deref().map(short).unwrap_or_default()
        )),
        (Rule::NewestFile, Some(_), Some(true)) => reporter.status(
            "Time of the packages: the newest file, as the git work tree has uncommitted \
             changes in the application directory (commit them, or set SOURCE_DATE_EPOCH, \
             for the same bytes in every clone)",
        ),
        (Rule::NewestFile, _, _) => reporter.status(
            "Time of the packages: the newest file (set SOURCE_DATE_EPOCH, or build from a \
             clean git work tree, for the same bytes in every checkout)",
        ),
    }
}

/// Where the packages and the build manifest were written: their paths as text, and the
/// build manifest with `out` and `manifest` as JSON.
fn written_output(
    out: &Path,
    build_manifest: &BuildManifest,
    manifest_name: &str,
) -> Result<(String, serde_json::Value)> {
    let mut text = String::new();
    for package in &build_manifest.packages {
        text.push_str(&format!("{}\n", out.join(&package.file).display()));
    }
    text.push_str(&format!("{}\n", out.join(manifest_name).display()));
    let mut document = serde_json::to_value(build_manifest)?;
    document["out"] = out.display().to_string().into();
    document["manifest"] = out.join(manifest_name).display().to_string().into();
    Ok((text, document))
}

/// The build manifest of the packages written (the payload, its debug symbols, its
/// layer, the stage packages, in that order); says the sizes of all but the stage packages.
fn build_manifest(
    loaded: &LoadedManifest,
    (payload, stages, dbgsym): Written,
    layer: Option<WrittenPackage>,
    provenance: Provenance,
    reporter: &Reporter,
) -> BuildManifest {
    reporter.status(format!("  {} ({} bytes)", payload.file, payload.size));
    let mut packages = vec![built(&payload, Role::Payload, None)];
    if let Some(dbgsym) = &dbgsym {
        reporter.status(format!("  {} ({} bytes)", dbgsym.file, dbgsym.size));
        packages.push(built(dbgsym, Role::Dbgsym, None));
    }
    if let Some(layer) = &layer {
        reporter.status(format!("  {} ({} bytes)", layer.file, layer.size));
        packages.push(built(layer, Role::Layer, None));
    }
    packages.extend(
        stages
            .iter()
            .map(|(stage, written)| built(written, Role::Stage, Some(stage.clone()))),
    );
    BuildManifest {
        app: loaded.app().to_string(),
        version: loaded.version.clone(),
        revision: loaded.revision.clone(),
        debian_version: loaded.names().debian_version(),
        stages: loaded.manifest.stages.names.clone(),
        target: loaded
            .names()
            .distribution()
            .map(|distribution| distribution.codename().to_string()),
        packages,
        provenance: Some(provenance),
    }
}

/// Strips the release's ELF files when the manifest asks for it (`[build] strip`, or the
/// kind's default), pointing their entries at the stripped copies.
fn strip_release(
    loaded: &LoadedManifest,
    tree: &mut [TreeItem],
    scratch: &Path,
    reporter: &Reporter,
) -> Result<strip::Stripped> {
    if !loaded.strip() {
        return Ok(strip::Stripped::default());
    }
    let stripped = strip::strip_tree(
        tree.iter_mut().map(|item| &mut item.entry).collect(),
        &scratch.join("strip"),
    )?;
    report_stripped(loaded, &stripped, reporter);
    Ok(stripped)
}

/// A temporary directory beside `out` (same filesystem) where the packages are written,
/// so that they appear in `out` only whole, by rename.
fn work_directory(out: &Path) -> Result<tempfile::TempDir> {
    let out_parent = parent_of(out);
    fs::create_dir_all(&out_parent)
        .with_context(|| format!("{}: cannot be created", out_parent.display()))?;
    tempfile::Builder::new()
        .prefix(".debstage-build-")
        .tempdir_in(&out_parent)
        .with_context(|| {
            format!(
                "{}: cannot create a temporary directory",
                out_parent.display()
            )
        })
}

/// What the staged tree tells: its entries with their MD5s, the architecture of its ELF
/// files, and the Depends field (declared, from the environment kind, detected).
struct Analysed {
    entries: Vec<Entry>,
    digests: FileDigests,
    architecture: String,
    depends: String,
}

/// Analyses a tree installed under `directory` (the release directory, or a layer's).
fn analyse(
    loaded: &LoadedManifest,
    directory: &str,
    tree: Vec<TreeItem>,
    environment_depends: &[String],
    system: &SystemRoot,
) -> Result<Analysed> {
    let links: Vec<(String, PathBuf)> = tree
        .iter()
        .filter_map(|item| match &item.entry.content {
            Content::Symlink(target) => Some((
                item.relative.clone(),
                PathBuf::from(std::ffi::OsStr::from_bytes(target)),
            )),
            _ => None,
        })
        .collect();
    let entries: Vec<Entry> = tree.into_iter().map(|item| item.entry).collect();
    // The md5 pass reads every file; the ELF files are parsed from the bytes it holds, so
    // the tree is not opened a second time to find them. The shared-library lookup then
    // has the cores to itself.
    let release_prefix = format!("{}/", directory.trim_start_matches('/'));
    let (digests, elves) = deb::md5sums::digest_and_inspect(&entries, |file| {
        let tree_path = file.path.strip_prefix(&release_prefix).unwrap_or(file.path);
        elf::read_file(file.source, tree_path, file.bytes)
    })?;
    let report = elf::report(elves, &links)?;
    let detected = shlibs::resolve(loaded, &report, system)?;
    let architecture = match &loaded.manifest.package.architecture {
        Some(architecture) => architecture.clone(),
        None => report
            .architecture
            .clone()
            .unwrap_or_else(|| "all".to_string()),
    };
    let depends = control::join_relations(
        loaded
            .manifest
            .depends
            .packages
            .iter()
            .chain(environment_depends)
            .chain(&detected)
            .map(String::as_str),
    );
    Ok(Analysed {
        entries,
        digests,
        architecture,
        depends,
    })
}

/// What [`write_packages`] wrote: the payload, the stage packages, the debug symbols.
type Written = (
    WrittenPackage,
    Vec<(String, WrittenPackage)>,
    Option<WrittenPackage>,
);

/// Writes the payload and, while it is compressed, the debug symbols and the small stage
/// packages.
fn write_packages(
    loaded: &LoadedManifest,
    payload_spec: &PackageSpec,
    dbgsym_spec: Option<&PackageSpec>,
    settings: Settings,
    epoch: u64,
    directory: &Path,
) -> Result<Written> {
    let stage_specs = loaded
        .manifest
        .stages
        .names
        .iter()
        .map(|stage| stage_spec(loaded, stage, settings, epoch).map(|spec| (stage.clone(), spec)))
        .collect::<Result<Vec<_>>>()?;
    let (payload, (dbgsym, stages)) = rayon::join(
        || deb::write_package(payload_spec, directory),
        || {
            rayon::join(
                || {
                    dbgsym_spec
                        .map(|spec| deb::write_package(spec, directory))
                        .transpose()
                },
                || {
                    stage_specs
                        .par_iter()
                        .map(|(stage, spec)| {
                            deb::write_package(spec, directory)
                                .map(|written| (stage.clone(), written))
                        })
                        .collect::<Result<Vec<(String, WrittenPackage)>>>()
                },
            )
        },
    );
    Ok((payload?, stages?, dbgsym?))
}

/// Says what stripping did, and warns about debug information that had to be dropped.
fn report_stripped(loaded: &LoadedManifest, stripped: &strip::Stripped, reporter: &Reporter) {
    let debug = if stripped.debug_files.is_empty() {
        String::new()
    } else {
        format!(
            "; the debug symbols of {} go into {}",
            stripped.debug_files.len(),
            loaded.names().dbgsym_package()
        )
    };
    if stripped.files > 0 {
        reporter.status(format!(
            "Stripped {} ELF file{}{debug}",
            stripped.files,
            if stripped.files == 1 { "" } else { "s" },
        ));
    }
    for path in &stripped.with_appended_data {
        reporter.warn(format!(
            "/{path}: not stripped: it carries data after its ELF contents (as executables \
             made by pkg, deno compile or bun build --compile do), which strip would cut off"
        ));
    }
    for path in &stripped.without_build_id {
        reporter.warn(format!(
            "/{path}: stripped, and its debug information dropped: it has no GNU build-id \
             (link it with -Wl,--build-id) to be found under /usr/lib/debug/.build-id"
        ));
    }
}

/// The `<payload>-dbgsym` package: the debug files in Debian's `.build-id` layout, with
/// the control fields Debian's automatic debug packages carry. `None` when stripping kept
/// no debug file.
fn dbgsym_spec(
    manifest: &LoadedManifest,
    stripped: &strip::Stripped,
    architecture: &str,
    settings: Settings,
    epoch: u64,
) -> Option<PackageSpec> {
    if stripped.debug_files.is_empty() {
        return None;
    }
    let release = manifest.names();
    let package = release.dbgsym_package();
    let payload = release.payload_package();
    let mut entries: Vec<Entry> = stripped
        .debug_files
        .iter()
        .map(|(build_id, source)| Entry {
            path: strip::Stripped::installed_path(build_id),
            mode: 0o644,
            mtime: None,
            content: Content::File {
                size: fs::metadata(source)
                    .map(|metadata| metadata.len())
                    .unwrap_or(0),
                source: source.clone(),
            },
        })
        .collect();
    // As dh_strip does: the documents are the payload's (same source, exact dependency).
    entries.push(Entry {
        path: format!("usr/share/doc/{package}"),
        mode: 0o777,
        mtime: None,
        content: Content::Symlink(payload.clone().into_bytes()),
    });
    let mut control = Control::new();
    control.set("Package", &package);
    control.set("Source", manifest.app());
    control.set("Version", release.debian_version());
    control.set("Auto-Built-Package", "debug-symbols");
    control.set("Architecture", architecture);
    control.set("Maintainer", manifest.manifest.package.maintainer.clone());
    control.set("Installed-Size", "0");
    control.set(
        "Depends",
        format!("{payload} (= {})", release.debian_version()),
    );
    control.set("Section", "debug");
    control.set("Priority", "optional");
    control.set(
        "Description",
        control::description(&format!("debug symbols for {payload}"), ""),
    );
    control.set("Build-Ids", stripped.build_ids_field());
    Some(PackageSpec::new(
        control,
        entries,
        Vec::new(),
        settings,
        epoch,
    ))
}

/// Moves the packages and the build manifest from the work directory into `out`.
fn move_into(
    out: &Path,
    work: &Path,
    build_manifest: &BuildManifest,
    manifest_name: &str,
) -> Result<()> {
    fs::create_dir_all(out).with_context(|| format!("{}: cannot be created", out.display()))?;
    for name in build_manifest
        .packages
        .iter()
        .map(|package| package.file.as_str())
        .chain([manifest_name])
    {
        let target = out.join(name);
        fs::rename(work.join(name), &target)
            .with_context(|| format!("{}: cannot be written", target.display()))?;
    }
    Ok(())
}

fn built(written: &WrittenPackage, role: Role, stage: Option<String>) -> BuiltPackage {
    BuiltPackage {
        file: written.file.clone(),
        id: written.id.clone(),
        size: written.size,
        sha256: written.sha256.clone(),
        role,
        stage,
    }
}

fn parent_of(path: &Path) -> PathBuf {
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
fn newest_input_mtime(directory: &Path, out: &Path) -> Result<u64> {
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
fn newest_mtime(tree: &[TreeItem], manifest: &Path) -> u64 {
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
struct TreeItem {
    /// The path relative to the release directory.
    relative: String,
    /// The data entry, installed under the release directory.
    entry: Entry,
}

fn glob_set(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(Glob::new(pattern)?);
    }
    Ok(builder.build()?)
}

/// Lists the staged tree under the release directory, applying `[files]` include and
/// exclude globs (an excluded directory is skipped whole).
fn list_tree(
    manifest: &LoadedManifest,
    root: &Path,
    out: &Path,
    reporter: &Reporter,
) -> Result<Vec<TreeItem>> {
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
    if !by_default.is_empty() {
        reporter.status(format!(
            "Left out by default (name the group in [files] keep to ship it): {}",
            by_default.join(", ")
        ));
    }
    let left_out = listing.left_out.seen();
    if !left_out.is_empty() {
        reporter.status(format!(
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
    Ok(items)
}

/// What listing the staged tree needs at every directory.
struct Listing<'a> {
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
            let target = std::fs::read_link(&path)
                .with_context(|| format!("{}: cannot be read", path.display()))?;
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
fn add_activation_hook(manifest: &LoadedManifest, tree: &mut Vec<TreeItem>) -> Result<()> {
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
fn check_referenced_programs(manifest: &LoadedManifest, tree: &[TreeItem]) -> Result<()> {
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

/// A changelog trailer's date (RFC 2822, UTC) of Unix seconds.
pub(crate) fn changelog_date(epoch: u64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    time.format(&format).unwrap_or_default()
}

/// The year (UTC) of Unix seconds, as a copyright line gives it.
pub(crate) fn changelog_year(epoch: u64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    time.year().to_string()
}

/// `/usr/share/doc/<package>/copyright` and `changelog.Debian.gz`.
fn documents(
    manifest: &LoadedManifest,
    package: &str,
    epoch: u64,
    compression_threads: u32,
) -> Result<Vec<Entry>> {
    let context = document_context(
        manifest,
        package,
        &manifest.version,
        &manifest.names().debian_version(),
        epoch,
    );
    documents_of(package, &context, compression_threads)
}

/// What the documents of `package` say: version `version` (`debian_version` as a
/// package) of the manifest's application, at `epoch`.
fn document_context(
    manifest: &LoadedManifest,
    package: &str,
    version: &str,
    debian_version: &str,
    epoch: u64,
) -> DocumentContext {
    DocumentContext {
        package: package.to_string(),
        app: manifest.app().to_string(),
        version: version.to_string(),
        debian_version: debian_version.to_string(),
        distribution: "stable".to_string(),
        maintainer: manifest.manifest.package.maintainer.clone(),
        license: manifest.manifest.package.license.clone(),
        homepage: manifest.manifest.package.homepage.clone(),
        date: changelog_date(epoch),
        year: changelog_year(epoch),
    }
}

/// The documents of `package` rendered from `context`.
fn documents_of(
    package: &str,
    context: &DocumentContext,
    compression_threads: u32,
) -> Result<Vec<Entry>> {
    let changelog = scripts::render("changelog", context)?;
    let gzip = Settings {
        compression: crate::deb::compress::Compression::Gzip,
        level: Some(9),
        threads: compression_threads,
    };
    let compressed = compress::compress_bytes(changelog.as_bytes(), gzip)?;
    // Policy 12.7: a native version (no revision, as a layer's) has `changelog.gz`.
    let changelog_name = if context.debian_version.contains('-') {
        "changelog.Debian.gz"
    } else {
        "changelog.gz"
    };
    Ok(vec![
        Entry::bytes(
            format!("usr/share/doc/{package}/copyright"),
            0o644,
            scripts::render("copyright", context)?,
        ),
        Entry::bytes(
            format!("usr/share/doc/{package}/{changelog_name}"),
            0o644,
            compressed,
        ),
    ])
}

fn common_control(manifest: &LoadedManifest, package: &str, architecture: &str) -> Control {
    common_control_at(
        manifest,
        package,
        &manifest.names().debian_version(),
        architecture,
    )
}

/// The first control fields of `package` at `version`.
fn common_control_at(
    manifest: &LoadedManifest,
    package: &str,
    version: &str,
    architecture: &str,
) -> Control {
    let section = &manifest.manifest.package;
    let mut control = Control::new();
    control.set("Package", package);
    // Every package of one build names the application as its source: the repository
    // groups them by it, and lintian accepts the stage packages' shared documentation.
    control.set("Source", manifest.app());
    control.set("Version", version);
    control.set("Architecture", architecture);
    control.set("Maintainer", section.maintainer.clone());
    // Placed here so that the writer's value keeps Debian's field order.
    control.set("Installed-Size", "0");
    control
}

fn finish_control(
    control: &mut Control,
    manifest: &LoadedManifest,
    synopsis: &str,
    extended: &str,
) {
    let section = &manifest.manifest.package;
    control.set("Section", section.section.clone());
    control.set("Priority", section.priority.clone());
    if let Some(homepage) = &section.homepage {
        control.set("Homepage", homepage.clone());
    }
    control.set("Description", control::description(synopsis, extended));
}

/// The payload; `file_overrides` are lintian overrides of single files (tag and path).
fn payload_spec(
    manifest: &LoadedManifest,
    mut entries: Vec<Entry>,
    architecture: &str,
    depends: &str,
    file_overrides: &[String],
    settings: Settings,
    epoch: u64,
) -> Result<PackageSpec> {
    let package = manifest.names().payload_package();
    entries.extend(documents(manifest, &package, epoch, settings.threads)?);
    let overrides = OverridesContext {
        package: package.clone(),
        tags: PAYLOAD_OVERRIDES
            .iter()
            .chain(env::lintian_overrides(&manifest.manifest.environment))
            .filter(|tag| **tag != "initial-upload-closes-no-bugs" || manifest.revision == "1")
            .map(|tag| tag.to_string())
            .chain(file_overrides.iter().cloned())
            .collect(),
    };
    entries.push(Entry::bytes(
        format!("usr/share/lintian/overrides/{package}"),
        0o644,
        scripts::render("lintian-overrides", &overrides)?,
    ));
    let mut control = common_control(manifest, &package, architecture);
    control.set("Depends", depends);
    let (synopsis, extended) = split_description(&manifest.manifest.package.description);
    let extended = format!(
        "{extended}\n\nThis package holds release {} of {}, installed into {}. \
         The stage packages ({}-<stage>) point a stage at it.",
        manifest.version,
        manifest.app(),
        manifest.names().release_dir(),
        manifest.app()
    );
    finish_control(&mut control, manifest, &synopsis, extended.trim_start());
    let context = PayloadContext::new(manifest);
    let mut scripts = vec![ControlMember {
        name: "postrm".into(),
        text: scripts::render("payload-postrm", &context)?,
    }];
    if manifest
        .manifest
        .service
        .as_ref()
        .is_some_and(|service| service.user.is_some())
    {
        scripts.push(ControlMember {
            name: "postinst".into(),
            text: scripts::render("payload-postinst", &context)?,
        });
    }
    Ok(PackageSpec::new(control, entries, scripts, settings, epoch))
}

/// Writes the layer package into `work`, or takes the one a previous build left in
/// `out` (the same key gives the same bytes, so it is not written again).
fn write_layer(
    loaded: &LoadedManifest,
    layer: &env::staged::StagedLayer,
    system: &SystemRoot,
    settings: Settings,
    out: &Path,
    work: &Path,
    reporter: &Reporter,
) -> Result<WrittenPackage> {
    let names = loaded.names().app();
    let package = names.layer_package(&layer.key);
    let directory = names.layer_dir(&layer.key);
    let version = layer_version(loaded.names().distribution());
    // The same key gives the same bytes: a `.deb` of the layer that a previous build left
    // in `out` or in the cache is taken as it is, before the tree is read at all (reading
    // and hashing a large layer is most of a code-only build's time otherwise).
    let built = layer.prebuilt.clone().or_else(|| {
        [Some(out), layer.cache.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|place| built_layer(place, &package, &version))
    });
    if let Some((built, architecture)) = built.as_ref().and_then(|built| {
        let name = built.file_name()?.to_str()?;
        let architecture = name.strip_suffix(".deb")?.rsplit('_').next()?;
        Some((built, architecture.to_string()))
    }) {
        reporter.status(format!(
            "Layer {package} is taken as built: {}",
            built.display()
        ));
        return reuse_package(built, work, &package, &version, &architecture);
    }
    let mut items = list_layer(&layer.root, &directory)?;
    // Stripped as the release would have been (node-gyp's modules keep their symbols);
    // their debug files are dropped: a layer holds third-party code and has no dbgsym.
    let strip_work = tempfile::tempdir_in(work)
        .with_context(|| format!("{}: cannot create a directory", work.display()))?;
    if loaded.strip() {
        strip::strip_tree(
            items.iter_mut().map(|item| &mut item.entry).collect(),
            strip_work.path(),
        )?;
    }
    let Analysed {
        entries,
        digests,
        architecture,
        depends,
    } = analyse(loaded, &directory, items, &layer.depends, system)?;
    let file = crate::naming::deb_file_name(&package, &version, &architecture);
    let cached = layer.cache.as_ref().map(|cache| cache.join(&file));
    // The layer's bytes may depend on its key alone: it is compressed the same way
    // whatever `--compress` and `--level` say for the release (xz at dpkg-deb's level;
    // liblzma's threaded encoder gives the same bytes for any thread count).
    let layer_settings = Settings {
        compression: compress::Compression::Xz,
        level: None,
        threads: settings.threads,
    };
    let mut spec = layer_spec(
        loaded,
        &package,
        &directory,
        entries,
        &architecture,
        &depends,
        layer_settings,
    )?;
    spec.digests = digests;
    let written = deb::write_package(&spec, work)?;
    // Kept for the next build of the same recipe (its bytes depend on the key alone); a
    // cache that cannot be written costs that build time, not this one.
    if let Some(cached) = &cached {
        let partial = cached.with_extension("deb.partial");
        let stored = fs::create_dir_all(cached.parent().unwrap_or(Path::new("/")))
            .and_then(|_| fs::copy(work.join(&written.file), &partial))
            .and_then(|_| fs::rename(&partial, cached));
        if let Err(error) = stored {
            reporter.warn(format!("{}: not written: {error}", cached.display()));
        }
    }
    Ok(written)
}

/// The `.deb` of layer `package` at `version`, for any architecture, in `directory`.
fn built_layer(directory: &Path, package: &str, version: &str) -> Option<PathBuf> {
    let prefix = crate::naming::deb_file_name(package, version, "");
    let prefix = prefix.strip_suffix(".deb").unwrap_or(&prefix);
    fs::read_dir(directory)
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(prefix) && name.ends_with(".deb"))
        })
}

/// A package a previous build wrote, linked (or copied) into `work` so that it moves
/// into `out` with the others.
fn reuse_package(
    previous: &Path,
    work: &Path,
    package: &str,
    version: &str,
    architecture: &str,
) -> Result<WrittenPackage> {
    let file = previous
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = work.join(&file);
    if fs::hard_link(previous, &target).is_err() {
        fs::copy(previous, &target)
            .with_context(|| format!("{}: cannot be copied", previous.display()))?;
    }
    let (size, sha256) = crate::debian::digests::sha256_of(previous)
        .with_context(|| format!("{}: cannot be read", previous.display()))?;
    Ok(WrittenPackage {
        file,
        id: crate::naming::package_id::PackageId::new(package, version, architecture),
        size,
        sha256,
    })
}

/// The entries of a layer's tree, installed under `directory`, in path order.
fn list_layer(root: &Path, directory: &str) -> Result<Vec<TreeItem>> {
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
        let metadata = fs::symlink_metadata(entry.path())
            .with_context(|| format!("{}: cannot be read", entry.path().display()))?;
        let kind = metadata.file_type();
        let content = if kind.is_dir() {
            Content::Directory
        } else if kind.is_symlink() {
            let target = fs::read_link(entry.path())
                .with_context(|| format!("{}: cannot be read", entry.path().display()))?;
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

/// The layer package: the tree, its documents and lintian overrides, at the layer
/// version and [`LAYER_EPOCH`], with nothing of the release in it.
fn layer_spec(
    manifest: &LoadedManifest,
    package: &str,
    directory: &str,
    mut entries: Vec<Entry>,
    architecture: &str,
    depends: &str,
    settings: Settings,
) -> Result<PackageSpec> {
    let version = layer_version(manifest.names().distribution());
    let context = document_context(
        manifest,
        package,
        &format!("{version} (dependencies layer)"),
        &version,
        LAYER_EPOCH,
    );
    entries.extend(documents_of(package, &context, settings.threads)?);
    let overrides = OverridesContext {
        package: package.to_string(),
        tags: PAYLOAD_OVERRIDES
            .iter()
            .chain(env::lintian_overrides(&manifest.manifest.environment))
            .map(|tag| tag.to_string())
            .collect(),
    };
    entries.push(Entry::bytes(
        format!("usr/share/lintian/overrides/{package}"),
        0o644,
        scripts::render("lintian-overrides", &overrides)?,
    ));
    let mut control = common_control_at(manifest, package, &version, architecture);
    control.set("Depends", depends);
    // The description names the application only: the key does not hold the manifest's
    // description, and the same key must give the same bytes.
    let extended = format!(
        "This package holds the third-party dependencies that releases of {app} share, \
         installed into {directory}. Each release ({app}-<version>) that uses them depends \
         on exactly this package.",
        app = manifest.app(),
    );
    finish_control(
        &mut control,
        manifest,
        &format!("third-party dependencies of {}", manifest.app()),
        &extended,
    );
    Ok(PackageSpec::new(
        control,
        entries,
        Vec::new(),
        settings,
        LAYER_EPOCH,
    ))
}

fn stage_spec(
    manifest: &LoadedManifest,
    stage: &str,
    settings: Settings,
    epoch: u64,
) -> Result<PackageSpec> {
    let context = StageContext::new(manifest, stage);
    let package = context.package.clone();
    // The documents are the payload's: the stage package depends on exactly that payload.
    let mut entries = vec![Entry {
        path: format!("usr/share/doc/{package}"),
        mode: 0o777,
        mtime: None,
        content: Content::Symlink(manifest.names().payload_package().into_bytes()),
    }];
    let overrides = OverridesContext {
        package: package.clone(),
        tags: STAGE_OVERRIDES.iter().map(|tag| tag.to_string()).collect(),
    };
    entries.push(Entry::bytes(
        format!("usr/share/lintian/overrides/{package}"),
        0o644,
        scripts::render("lintian-overrides", &overrides)?,
    ));
    let names = manifest.names().app();
    entries.push(Entry::bytes(
        names.pin_path(stage),
        0o644,
        scripts::render("pin", &context)?,
    ));
    if manifest.manifest.service.is_some() {
        entries.push(Entry::bytes(
            names.unit_path(stage),
            0o644,
            scripts::render("unit", &context)?,
        ));
    }
    entries.extend(extra_files(manifest, stage)?);
    let mut control = common_control(manifest, &package, "all");
    // deb-systemd-helper and deb-systemd-invoke come from init-system-helpers, which is
    // essential: no Depends on it.
    let release = manifest.names();
    control.set(
        "Depends",
        format!(
            "{} (= {})",
            release.payload_package(),
            release.debian_version()
        ),
    );
    let (synopsis, _) = split_description(&manifest.manifest.package.description);
    let extended = format!(
        "Installing this package points {link} at release {version} of {app} ({payload}), \
         after the release's activation hook has passed; the switch is atomic and journaled \
         under {state_dir}. Its apt pin makes the {stage} suite the source of truth for this host.",
        link = names.stage_link(stage),
        state_dir = names.state_dir(),
        app = manifest.app(),
        version = manifest.version,
        payload = release.payload_package(),
    );
    finish_control(
        &mut control,
        manifest,
        &format!("{synopsis} ({stage} stage)"),
        &extended,
    );
    let scripts = vec![
        ControlMember {
            name: "postinst".into(),
            text: scripts::render("stage-postinst", &context)?,
        },
        ControlMember {
            name: "prerm".into(),
            text: scripts::render("stage-prerm", &context)?,
        },
        ControlMember {
            name: "postrm".into(),
            text: scripts::render("stage-postrm", &context)?,
        },
    ];
    Ok(PackageSpec::new(control, entries, scripts, settings, epoch))
}

/// The `[[files.extra]]` files of one stage package, `{stage}` in their paths replaced.
fn extra_files(manifest: &LoadedManifest, stage: &str) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for extra in &manifest.manifest.files.extra {
        let source = manifest.resolve(&extra.source);
        let bytes =
            fs::read(&source).with_context(|| format!("{}: cannot be read", source.display()))?;
        let mode = match &extra.mode {
            Some(mode) => manifest::parse_mode(mode)
                .map_err(|message| manifest.error("[[files.extra]] mode", message))?,
            None => 0o644,
        };
        let dest = extra.dest.replace("{stage}", stage);
        entries.push(Entry::bytes(
            dest.trim_start_matches('/').to_string(),
            mode,
            bytes,
        ));
    }
    Ok(entries)
}

/// The synopsis (first line) and the extended description (the rest).
fn split_description(description: &str) -> (String, String) {
    let mut lines = description.lines();
    let synopsis = lines.next().unwrap_or("").trim().to_string();
    let extended = lines.collect::<Vec<_>>().join("\n");
    (synopsis, extended.trim().to_string())
}
