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
mod packages;
pub(crate) mod request;
pub(crate) mod root;
pub(crate) mod runner;
pub(crate) mod scripts;
pub(crate) mod strip;
mod tree;
pub(crate) mod tree_copy;

use std::fs;
use std::os::unix::ffi::OsStrExt;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;

use crate::build::depends::{elf, shlibs};
use crate::build::manifest::{Environment, LoadedManifest};
use crate::build::request::BuildRequest;
use crate::build::runner::{Runner, SystemRoot};
use crate::deb::compress::{self, Settings};
use crate::deb::{
    self, Content, DataSpec, Entry, FileDigests, PackageSpec, PendingPackage, WrittenPackage,
};
use crate::debian::control::{self};
use crate::naming::build_manifest::{BuildManifest, BuiltPackage, Provenance};
use crate::naming::{layer_version, Role};
use crate::report::Reporter;
use packages::{dbgsym_spec, layer_spec, payload_control, payload_entries, stage_spec};
use tree::{
    add_activation_hook, check_referenced_programs, list_layer, list_tree, newest_input_mtime,
    newest_mtime, parent_of, TreeItem,
};

/// Builds every package of the manifest into `--out`, once per target (`--target`), and
/// prints what was written: the build manifest of one build, or with `--target all` the
/// build manifests of every target (in JSON, as `builds`).
pub(crate) fn run(options: &BuildRequest, reporter: &Reporter) -> Result<Vec<BuildManifest>> {
    let loaded = manifest::load(
        &options.manifest,
        options.version.as_deref(),
        options.revision.as_deref(),
    )?;
    env::check(&loaded)?;
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
    // application's files are read before the environment runs and writes anything. Git
    // (a process per question) is asked about a `dir` tree built on the host while the
    // tree is listed; with a build root, before the root is prepared.
    let generated = !matches!(loaded.manifest.environment, Environment::Dir(_));
    let source_date = if !generated && loaded.target.is_none() {
        None
    } else {
        Some(crate::source_date::choose(&loaded.directory, &options.out)?)
    };
    let inputs_mtime = match source_date.as_ref().map(|date| date.epoch) {
        Some(None) if generated => newest_input_mtime(&loaded.directory, &options.out)?,
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

    if let Some(source_date) = &source_date {
        report_source_date(source_date, reporter);
    }

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
    let (source_date, listed) = match source_date {
        Some(source_date) => (source_date, list_tree(loaded, &staged.root, &options.out)?),
        None => {
            let (source_date, listed) = std::thread::scope(|scope| {
                let git =
                    scope.spawn(|| crate::source_date::choose(&loaded.directory, &options.out));
                let listed = list_tree(loaded, &staged.root, &options.out);
                let source_date = git
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (source_date, listed)
            });
            let source_date = source_date?;
            report_source_date(&source_date, reporter);
            (source_date, listed?)
        }
    };
    for note in listed.notes {
        reporter.status(note);
    }
    let mut tree = listed.items;
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

    let links = symbolic_links(&tree);
    let entries: Vec<Entry> = tree.into_iter().map(|item| item.entry).collect();
    let work = work_directory(&options.out)?;
    // The payload's data.tar is compressed from here on, while the tree is analysed for
    // its control member (md5sums, Architecture, Depends) and the other packages are
    // written.
    let entries = payload_entries(
        loaded,
        entries,
        &stripped.lintian_overrides(),
        settings,
        epoch,
    )?;
    // A bar of the bytes handed to the compressor, on a terminal only.
    let total = entries.iter().filter_map(Entry::file_size).sum();
    let progress = reporter.progress_bytes(total, "compressing");
    let payload = PendingPackage::start(
        DataSpec {
            entries,
            compression: settings,
            mtime: epoch,
            progress: progress.clone(),
        },
        work.path(),
    )?;
    let Analysed {
        digests,
        architecture,
        depends,
    } = analyse(
        loaded,
        &loaded.names().release_dir(),
        payload.entries(),
        &links,
        &staged.depends,
        &runner.system_root(),
    )?;

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

    let (control, scripts) = payload_control(loaded, &architecture, &depends)?;
    let dbgsym_spec = dbgsym_spec(loaded, &stripped, &architecture, settings, epoch);
    let written = write_packages(
        loaded,
        || payload.finish(&control, &scripts, &digests),
        dbgsym_spec.as_ref(),
        settings,
        epoch,
        work.path(),
    )?;
    progress.finish_and_clear();
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
    fs_err::create_dir_all(&out_parent)?;
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

/// What the staged tree tells: the MD5s of its files, the architecture of its ELF files,
/// and the Depends field (declared, from the environment kind, detected).
struct Analysed {
    digests: FileDigests,
    architecture: String,
    depends: String,
}

/// The symbolic links of a tree: (path relative to the release directory, target).
fn symbolic_links(tree: &[TreeItem]) -> Vec<(String, PathBuf)> {
    tree.iter()
        .filter_map(|item| match &item.entry.content {
            Content::Symlink(target) => Some((
                item.relative.clone(),
                PathBuf::from(std::ffi::OsStr::from_bytes(target)),
            )),
            _ => None,
        })
        .collect()
}

/// Analyses the `entries` of a tree installed under `directory` (the release directory,
/// or a layer's), whose symbolic links are `links`.
fn analyse(
    loaded: &LoadedManifest,
    directory: &str,
    entries: &[Entry],
    links: &[(String, PathBuf)],
    environment_depends: &[String],
    system: &SystemRoot,
) -> Result<Analysed> {
    // The md5 pass reads every file; the ELF files are parsed from the bytes it holds, so
    // the tree is not opened a second time to find them. The shared-library lookup then
    // has the cores to itself.
    let release_prefix = format!("{}/", directory.trim_start_matches('/'));
    let (digests, elves) = deb::md5sums::digest_and_inspect(entries, |file| {
        let tree_path = file.path.strip_prefix(&release_prefix).unwrap_or(file.path);
        elf::read_file(file.source, tree_path, file.bytes)
    })?;
    let report = elf::report(elves, links)?;
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

/// Finishes the payload (`payload`) and, while its compression ends, writes the debug
/// symbols and the small stage packages.
fn write_packages(
    loaded: &LoadedManifest,
    payload: impl FnOnce() -> Result<WrittenPackage> + Send,
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
    let (payload, (dbgsym, stages)) = rayon::join(payload, || {
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
                        deb::write_package(spec, directory).map(|written| (stage.clone(), written))
                    })
                    .collect::<Result<Vec<(String, WrittenPackage)>>>()
            },
        )
    });
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

/// Moves the packages and the build manifest from the work directory into `out`.
fn move_into(
    out: &Path,
    work: &Path,
    build_manifest: &BuildManifest,
    manifest_name: &str,
) -> Result<()> {
    fs_err::create_dir_all(out)?;
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
    let links = symbolic_links(&items);
    let entries: Vec<Entry> = items.into_iter().map(|item| item.entry).collect();
    let Analysed {
        digests,
        architecture,
        depends,
    } = analyse(loaded, &directory, &entries, &links, &layer.depends, system)?;
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
        fs_err::copy(previous, &target)?;
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
