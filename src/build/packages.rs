//! The packages a build writes, before they are written: the control side of every package a build writes: the control fields shared by all
//! of them, the payload's, the stage packages', the layer's and the debug symbols',
//! their documentation (copyright, changelog) and the lintian overrides the design
//! needs.

use std::fs;

use anyhow::Result;

use crate::build::env::python_layer::LAYER_EPOCH;
use crate::build::manifest::LoadedManifest;
use crate::build::scripts::{DocumentContext, OverridesContext, PayloadContext, StageContext};
use crate::build::{env, manifest, scripts, strip};
use crate::deb::compress::{self, Settings};
use crate::deb::{Content, ControlMember, Entry, PackageSpec};
use crate::debian::changelog::{changelog_date, changelog_year};
use crate::debian::control::{self, Control};
use crate::naming::layer_version;

/// Lintian tags that an `/opt` bundle raises by design, shipped as overrides.
/// Tags of the payload that the design raises:
/// - `dir-or-file-in-opt`: the release directory lives in `/opt/<app>/<version>`;
/// - `initial-upload-closes-no-bugs`: the version is part of the payload's name, so every
///   release is a new package whose changelog has one entry, and no ITP bug exists to close
///   (lintian raises it only for revision 1);
/// - `missing-intermediate-directory`: `/opt` is not shipped, because base-files makes it
///   and a package that owned it would take it away when purged (piuparts).
pub(super) const PAYLOAD_OVERRIDES: &[&str] = &[
    "dir-or-file-in-opt",
    "initial-upload-closes-no-bugs",
    "missing-intermediate-directory",
];

/// Tags of a stage package that the design raises: it ships the apt pin that makes its
/// suite the source of truth for the host (DESIGN.md, "On a server"); its postinst reads
/// the unit's state with `systemctl show` during the settle period (read-only, no
/// deb-systemd-* helper offers it; restarts still go through deb-systemd-invoke).
pub(super) const STAGE_OVERRIDES: &[&str] = &[
    "package-installs-apt-preferences",
    "maintainer-script-calls-systemctl",
];

/// `/usr/share/doc/<package>/copyright` and `changelog.Debian.gz`.
pub(super) fn documents(
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
pub(super) fn document_context(
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
pub(super) fn documents_of(
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

pub(super) fn common_control(
    manifest: &LoadedManifest,
    package: &str,
    architecture: &str,
) -> Control {
    common_control_at(
        manifest,
        package,
        &manifest.names().debian_version(),
        architecture,
    )
}

/// The first control fields of `package` at `version`.
pub(super) fn common_control_at(
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

pub(super) fn finish_control(
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

/// What the payload's `data.tar` holds: the release's `entries`, its documents and its
/// lintian overrides; `file_overrides` are overrides of single files (tag and path).
pub(super) fn payload_entries(
    manifest: &LoadedManifest,
    mut entries: Vec<Entry>,
    file_overrides: &[String],
    settings: Settings,
    epoch: u64,
) -> Result<Vec<Entry>> {
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
    Ok(entries)
}

/// The payload's control fields (Installed-Size is added by the writer) and maintainer
/// scripts.
pub(super) fn payload_control(
    manifest: &LoadedManifest,
    architecture: &str,
    depends: &str,
) -> Result<(Control, Vec<ControlMember>)> {
    let package = manifest.names().payload_package();
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
    Ok((control, scripts))
}

/// The `<payload>-dbgsym` package: the debug files in Debian's `.build-id` layout, with
/// the control fields Debian's automatic debug packages carry. `None` when stripping kept
/// no debug file.
pub(super) fn dbgsym_spec(
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

/// The layer package: the tree, its documents and lintian overrides, at the layer
/// version and [`LAYER_EPOCH`], with nothing of the release in it.
pub(super) fn layer_spec(
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

pub(super) fn stage_spec(
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
pub(super) fn extra_files(manifest: &LoadedManifest, stage: &str) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for extra in &manifest.manifest.files.extra {
        let source = manifest.resolve(&extra.source);
        let bytes = fs_err::read(&source)?;
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
pub(super) fn split_description(description: &str) -> (String, String) {
    let mut lines = description.lines();
    let synopsis = lines.next().unwrap_or("").trim().to_string();
    let extended = lines.collect::<Vec<_>>().join("\n");
    (synopsis, extended.trim().to_string())
}
