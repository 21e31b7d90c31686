//! Files the build leaves out of the release by default, in named groups that `[files]
//! keep` can bring back:
//! - `installer-files`: the bookkeeping `cargo install --root` writes at the root it
//!   installs into (`.crates.toml`, `.crates2.json`), which names the build machine's
//!   paths and means nothing on a server;
//! - `node-gyp-build` (kind `node`): what node-gyp leaves in a native module's `build/`
//!   (the directory beside its `binding.gyp`) besides the `.node` files that Node loads:
//!   object files, static archives, `obj.target/`, `Makefile`, `config.gypi`, the
//!   `node_gyp_bins` link to the build machine's python;
//! - `node-dotfiles` (kind `node`): dotfiles of packages in `node_modules` that lintian
//!   flags or that only serve their authors (`.npmignore`, `.eslintrc*`, `.gitignore`,
//!   `.travis.yml`, ...), and anywhere in the tree the two that lintian flags as errors
//!   (`.npmignore`, `.eslintrc*`), which configure development tools only;
//! - `node-prebuilds` (kind `node`): in a package's `prebuilds/` (prebuildify's layout,
//!   `prebuilds/<platform>-<arch>/`), the directories of other platforms and
//!   architectures, and musl builds: they cannot load on the server, and strip and the
//!   dependency detection cannot read them;
//! - `node-build-state` (kind `node`): what a package manager keeps about the install it
//!   made, directly in a `node_modules`: pnpm's `.modules.yaml` (which names the build
//!   machine's store and the time), yarn's `.yarn-integrity` and `.yarn-state.yml`,
//!   and `.cache/` (babel, eslint and webpack caches); and berry's
//!   `.yarn/install-state.gz` beside the application's `package.json`;
//! - `node-build-only` (kind `node`): in a package of `node_modules` that has a
//!   `binding.gyp`, its C and C++ sources and headers (what node-gyp compiled; the
//!   `.node` file is what loads), and `test/`, `tests/` and `__tests__/` at the top of
//!   any package and of the application itself.

use std::path::{Component, Path};

use crate::build::manifest::{Environment, KeptGroup, LoadedManifest};

/// The bookkeeping files of installers, by name, at any depth.
const INSTALLER_FILES: &[&str] = &[".crates.toml", ".crates2.json"];

/// Dotfiles in `node_modules` that are left out, by exact name.
const NODE_DOTFILES: &[&str] = &[
    ".npmignore",
    ".eslintignore",
    ".gitignore",
    ".gitattributes",
    ".gitmodules",
    ".hgignore",
    ".travis.yml",
    ".editorconfig",
    ".jshintrc",
    ".jshintignore",
    ".prettierignore",
    ".nvmrc",
    ".DS_Store",
];

/// Prefixes of dotfiles in `node_modules` that are left out (`.eslintrc.json`, ...).
const NODE_DOTFILE_PREFIXES: &[&str] = &[".eslintrc", ".prettierrc", ".nycrc", ".babelrc"];

/// Directories in `node_modules` that are left out whole.
const NODE_DOT_DIRECTORIES: &[&str] = &[".github", ".git", ".nyc_output", ".idea", ".vscode"];

/// Directories of node-gyp's `build/` that hold only intermediates (`obj.target/` holds
/// a copy of each `.node` file before it is linked into `Release/`).
const GYP_INTERMEDIATE_DIRECTORIES: &[&str] = &["obj.target", "obj", ".deps", "node_gyp_bins"];

/// Files a package manager keeps in `node_modules` about its install.
const NODE_BUILD_STATE_FILES: &[&str] = &[".modules.yaml", ".yarn-integrity", ".yarn-state.yml"];

/// Extensions of the C and C++ sources and headers of native modules.
const NATIVE_SOURCE_EXTENSIONS: &[&str] = &[
    "c", "cc", "cpp", "cxx", "h", "hh", "hpp", "hxx", "inl", "s", "asm",
];

/// Test folders at the top of a package.
const PACKAGE_TEST_DIRECTORIES: &[&str] = &["test", "tests", "__tests__"];

/// Which groups apply to one build.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Exclusions {
    installer_files: bool,
    node_gyp_build: bool,
    node_dotfiles: bool,
    node_prebuilds: bool,
    node_build_state: bool,
    node_build_only: bool,
}

impl Exclusions {
    /// The groups of the manifest's environment kind, without those `[files] keep` names.
    pub(crate) fn of(manifest: &LoadedManifest) -> Exclusions {
        let kept = |group: KeptGroup| {
            manifest
                .manifest
                .files
                .keep
                .iter()
                .any(|name| name == group.name())
        };
        let node = matches!(manifest.manifest.environment, Environment::Node(_));
        Exclusions {
            installer_files: !kept(KeptGroup::InstallerFiles),
            node_gyp_build: node && !kept(KeptGroup::NodeGypBuild),
            node_dotfiles: node && !kept(KeptGroup::NodeDotfiles),
            node_prebuilds: node && !kept(KeptGroup::NodePrebuilds),
            node_build_state: node && !kept(KeptGroup::NodeBuildState),
            node_build_only: node && !kept(KeptGroup::NodeBuildOnly),
        }
    }

    /// Whether the entry at `relative` (in the staged tree at `root`) is left out: a file
    /// or a directory with all it holds.
    #[cfg(test)]
    pub(crate) fn excludes(&self, root: &Path, relative: &Path, is_dir: bool) -> bool {
        self.group_of(root, relative, is_dir).is_some()
    }

    /// The group that leaves the entry at `relative` out, if one does.
    pub(crate) fn group_of(&self, root: &Path, relative: &Path, is_dir: bool) -> Option<KeptGroup> {
        let name = relative.file_name().and_then(|name| name.to_str())?;
        if self.installer_files && !is_dir && INSTALLER_FILES.contains(&name) {
            return Some(KeptGroup::InstallerFiles);
        }
        let lintian_error = name == ".npmignore" || name.starts_with(".eslintrc");
        if self.node_dotfiles && !is_dir && lintian_error {
            return Some(KeptGroup::NodeDotfiles);
        }
        if self.node_dotfiles && in_node_modules(relative) {
            let dotfile = if is_dir {
                NODE_DOT_DIRECTORIES.contains(&name)
            } else {
                NODE_DOTFILES.contains(&name)
                    || NODE_DOTFILE_PREFIXES
                        .iter()
                        .any(|prefix| name.starts_with(prefix))
            };
            if dotfile {
                return Some(KeptGroup::NodeDotfiles);
            }
        }
        if self.node_prebuilds && in_node_modules(relative) && other_prebuild(relative, is_dir) {
            return Some(KeptGroup::NodePrebuilds);
        }
        // Yarn berry's record of its install, beside the application's package.json.
        let berry_state = name == "install-state.gz"
            && relative
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|parent| parent == ".yarn");
        if self.node_build_state && !is_dir && berry_state {
            return Some(KeptGroup::NodeBuildState);
        }
        if self.node_build_state && directly_in_node_modules(relative) {
            let state = if is_dir {
                name == ".cache"
            } else {
                NODE_BUILD_STATE_FILES.contains(&name)
            };
            if state {
                return Some(KeptGroup::NodeBuildState);
            }
        }
        if self.node_build_only && build_only(root, relative, is_dir) {
            return Some(KeptGroup::NodeBuildOnly);
        }
        let intermediate = if is_dir {
            GYP_INTERMEDIATE_DIRECTORIES.contains(&name)
        } else {
            !name.ends_with(".node")
        };
        (self.node_gyp_build && intermediate && in_gyp_build(root, relative))
            .then_some(KeptGroup::NodeGypBuild)
    }

    /// Whether a directory at `relative` that holds nothing after the exclusions is left
    /// out too (the directories of node-gyp's `build/` that held only intermediates).
    pub(crate) fn drops_when_empty(&self, root: &Path, relative: &Path) -> bool {
        self.node_gyp_build && in_gyp_build(root, relative)
    }
}

/// Whether `relative` lies inside a `node_modules` directory.
fn in_node_modules(relative: &Path) -> bool {
    let mut components = relative.components();
    components.next_back();
    components.any(|component| component == Component::Normal("node_modules".as_ref()))
}

/// The directory of the package that `relative` lies in (`node_modules/<name>` or
/// `node_modules/@scope/<name>`, the innermost), and the rest of the path inside it.
fn package_of(relative: &Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let components: Vec<Component<'_>> = relative.components().collect();
    let node_modules = Component::Normal("node_modules".as_ref());
    let index = components
        .iter()
        .rposition(|component| *component == node_modules)?;
    let first = components.get(index + 1)?;
    let scoped = first
        .as_os_str()
        .to_str()
        .is_some_and(|name| name.starts_with('@'));
    let end = index + if scoped { 3 } else { 2 };
    if components.len() <= end {
        return None;
    }
    Some((
        components[..end].iter().collect(),
        components[end..].iter().collect(),
    ))
}

/// Whether `relative` is build-only content of a package (the application is one too):
/// a test folder at its top, or a C or C++ source of a package that node-gyp builds (a
/// `binding.gyp` at its top).
fn build_only(root: &Path, relative: &Path, is_dir: bool) -> bool {
    let is_test_directory = |inside: &Path| {
        is_dir
            && inside.components().count() == 1
            && inside
                .to_str()
                .is_some_and(|name| PACKAGE_TEST_DIRECTORIES.contains(&name))
    };
    let Some((package, inside)) = package_of(relative) else {
        return is_test_directory(relative);
    };
    if is_dir {
        return is_test_directory(&inside);
    }
    let source = relative
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| NATIVE_SOURCE_EXTENSIONS.contains(&extension));
    source && root.join(package).join("binding.gyp").is_file()
}

/// Whether `relative` sits directly in a `node_modules` directory.
fn directly_in_node_modules(relative: &Path) -> bool {
    relative
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|parent| parent == "node_modules")
}

/// Node's name of the architecture debstage runs on (`process.arch`), which the build
/// root and the servers share.
fn node_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        "x86" => "ia32",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Whether `relative` is a prebuilt module of another platform or libc: a directory in a
/// `prebuilds/` directory other than `linux-<arch>` (and its `linux-<arch>-<tag>`
/// variants that are not musl), or a musl build inside the kept one.
fn other_prebuild(relative: &Path, is_dir: bool) -> bool {
    let Some(name) = relative.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    let parent = relative.parent();
    let parent_name = parent
        .and_then(Path::file_name)
        .and_then(|name| name.to_str());
    let ours = format!("linux-{}", node_architecture());
    if is_dir && parent_name == Some("prebuilds") {
        let matches_platform = name == ours || name.starts_with(&format!("{ours}-"));
        return !matches_platform || name.contains("musl");
    }
    let in_prebuilds = parent
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .is_some_and(|grandparent| grandparent == "prebuilds");
    !is_dir && in_prebuilds && name.contains("musl")
}

/// Whether `relative` is a native module's node-gyp `build/` directory, or lies inside
/// one: a `build` component whose parent directory holds a `binding.gyp`.
fn in_gyp_build(root: &Path, relative: &Path) -> bool {
    let components: Vec<Component<'_>> = relative.components().collect();
    components.iter().enumerate().any(|(index, component)| {
        *component == Component::Normal("build".as_ref()) && {
            let parent: std::path::PathBuf = components[..index].iter().collect();
            root.join(parent).join("binding.gyp").is_file()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Exclusions {
        Exclusions {
            installer_files: true,
            node_gyp_build: true,
            node_dotfiles: true,
            node_prebuilds: true,
            node_build_state: true,
            node_build_only: true,
        }
    }

    #[test]
    fn groups_leave_out_what_they_name_only() {
        let root = tempfile::tempdir().expect("temp dir");
        let module = root.path().join("node_modules/addon");
        std::fs::create_dir_all(module.join("build/Release/obj.target")).expect("mkdir");
        std::fs::write(module.join("binding.gyp"), "{}").expect("write");
        let excluded =
            |path: &str, is_dir: bool| all().excludes(root.path(), Path::new(path), is_dir);

        assert!(excluded(".crates.toml", false));
        assert!(excluded("sub/.crates2.json", false));
        assert!(!excluded("crates.toml", false));

        assert!(excluded("node_modules/a/.npmignore", false));
        assert!(excluded("node_modules/a/.eslintrc.json", false));
        assert!(excluded("node_modules/a/.github", true));
        assert!(
            excluded(".eslintrc.json", false),
            "lintian's errors anywhere"
        );
        assert!(!excluded(".gitignore", false), "the app's own files stay");
        assert!(excluded("node_modules/a/.gitignore", false));
        assert!(!excluded("node_modules/a/.eslintrc.json", true));

        assert!(excluded("node_modules/addon/build/Makefile", false));
        assert!(excluded(
            "node_modules/addon/build/Release/obj.target/addon.o",
            false
        ));
        assert!(!excluded(
            "node_modules/addon/build/Release/addon.node",
            false
        ));
        assert!(!excluded("node_modules/addon/build", true));
        assert!(all().drops_when_empty(
            root.path(),
            Path::new("node_modules/addon/build/Release/obj.target")
        ));
        // A build/ without a binding.gyp beside it is the application's own.
        assert!(!excluded("node_modules/other/build/index.js", false));

        let ours = format!(
            "node_modules/sqlite/prebuilds/linux-{}",
            node_architecture()
        );
        assert!(!excluded(&ours, true));
        assert!(!excluded(&format!("{ours}/sqlite.glibc.node"), false));
        assert!(excluded(&format!("{ours}/sqlite.musl.node"), false));
        assert!(excluded(&format!("{ours}-musl"), true));
        for other in ["darwin-x64", "win32-ia32", "linux-riscv32", "android-arm64"] {
            assert!(excluded(
                &format!("node_modules/sqlite/prebuilds/{other}"),
                true
            ));
        }
        assert!(
            !excluded("prebuilds/darwin-x64", true),
            "the app's own stay"
        );

        assert!(excluded("node_modules/.modules.yaml", false));
        assert!(excluded("node_modules/.cache", true));
        assert!(excluded("node_modules/.yarn-integrity", false));
        assert!(excluded(".yarn/install-state.gz", false));
        assert!(!excluded("node_modules/a/.cache", true));

        assert!(excluded("node_modules/addon/src/addon.cc", false));
        assert!(excluded("node_modules/addon/deps/sqlite3/sqlite3.h", false));
        assert!(
            !excluded("node_modules/other/lib/template.h", false),
            "no binding.gyp"
        );
        assert!(excluded("node_modules/other/test", true));
        assert!(excluded("node_modules/@scope/pkg/__tests__", true));
        assert!(
            !excluded("node_modules/other/lib/test", true),
            "only at the top"
        );
        assert!(excluded("test", true), "the app's own tests");
        assert!(excluded("__tests__", true));
        assert!(!excluded("lib/test", true), "only at the top");
        assert!(!excluded("test", false), "a file named test");

        let none = Exclusions::default();
        assert!(!none.excludes(root.path(), Path::new(".crates.toml"), false));
        assert!(!none.excludes(
            root.path(),
            Path::new("node_modules/addon/build/Makefile"),
            false
        ));
    }
}
