//! Which Node.js releases can load a native module (`*.node`), read from the module:
//! - a module built against Node's own ABI exports `node_register_module_v<N>`, where N is
//!   the NODE_MODULE_VERSION of the headers it was built with; only the Node.js releases
//!   of that ABI load it ("was compiled against a different Node.js version");
//! - a module registered the older way (`NODE_MODULE`, which many addons still use) calls
//!   `node_module_register` with a static `_module` whose first field is that number: read
//!   from the symbol table while the module is not stripped yet; a module that comes
//!   without one was built by the Node.js that ran the install (node-gyp and
//!   prebuild-install both choose by the running Node's ABI), whose ABI the caller asks;
//! - a Node-API module exports `napi_register_module_v1` and loads in every release that
//!   has the Node-API functions it imports: a lower bound only.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use walkdir::WalkDir;

/// NODE_MODULE_VERSION of each Node.js release line (major version), from Node's ABI
/// registry (`doc/abi_version_registry.json` in nodejs/node; the `node` runtime entries
/// of released versions, not the `-pre` ones).
const MODULE_VERSIONS: &[(u32, u32)] = &[
    (72, 12),
    (79, 13),
    (83, 14),
    (88, 15),
    (93, 16),
    (102, 17),
    (108, 18),
    (111, 19),
    (115, 20),
    (120, 21),
    (127, 22),
    (131, 23),
    (137, 24),
    (141, 25),
];

/// Node-API functions that appeared after version 3, by the Node-API version that has
/// them (from the "N-API version" of each function in Node's n-api documentation).
/// Functions of versions 1 to 3 exist in every Node.js release Debian ships.
const NAPI_FUNCTIONS: &[(u32, &[&str])] = &[
    (
        4,
        &[
            "napi_create_threadsafe_function",
            "napi_get_threadsafe_function_context",
            "napi_call_threadsafe_function",
            "napi_acquire_threadsafe_function",
            "napi_release_threadsafe_function",
            "napi_unref_threadsafe_function",
            "napi_ref_threadsafe_function",
        ],
    ),
    (
        5,
        &[
            "napi_create_date",
            "napi_is_date",
            "napi_get_date_value",
            "napi_add_finalizer",
        ],
    ),
    (
        6,
        &[
            "napi_create_bigint_int64",
            "napi_create_bigint_uint64",
            "napi_create_bigint_words",
            "napi_get_value_bigint_int64",
            "napi_get_value_bigint_uint64",
            "napi_get_value_bigint_words",
            "napi_get_all_property_names",
            "napi_set_instance_data",
            "napi_get_instance_data",
        ],
    ),
    (
        7,
        &["napi_detach_arraybuffer", "napi_is_detached_arraybuffer"],
    ),
    (
        8,
        &[
            "napi_add_async_cleanup_hook",
            "napi_remove_async_cleanup_hook",
            "napi_object_freeze",
            "napi_object_seal",
            "napi_type_tag_object",
            "napi_check_object_type_tag",
        ],
    ),
    (
        9,
        &[
            "node_api_symbol_for",
            "node_api_get_module_file_name",
            "node_api_create_syntax_error",
            "node_api_throw_syntax_error",
        ],
    ),
    (
        10,
        &[
            "node_api_create_external_string_latin1",
            "node_api_create_external_string_utf16",
            "node_api_create_property_key_latin1",
            "node_api_create_property_key_utf8",
            "node_api_create_property_key_utf16",
        ],
    ),
];

/// The first Node.js release of the long-term lines that has each Node-API version
/// (Node's Node-API version matrix); odd, short-lived release lines are not considered.
const NAPI_RELEASES: &[(u32, &str)] = &[
    (3, "10.0.0"),
    (4, "10.16.0"),
    (5, "10.17.0"),
    (6, "10.20.0"),
    (7, "10.23.0"),
    (8, "12.22.0"),
    (9, "18.17.0"),
    (10, "22.14.0"),
];

/// What a native module needs from Node.js.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Node's own ABI: NODE_MODULE_VERSION.
    ModuleVersion(u32),
    /// Node-API of at least this version.
    NodeApi(u32),
    /// Node's own ABI, registered with `node_module_register` by a module without a
    /// symbol table: the ABI of the Node.js that built it.
    BuildAbi,
}

/// One native module of the tree.
#[derive(Debug, Clone)]
pub(crate) struct NativeModule {
    /// Its path in the tree.
    pub(crate) path: PathBuf,
    /// What it needs.
    pub(crate) needs: Needs,
}

/// The native modules (`*.node` ELF files) under `root`. A `.node` file that is neither
/// kind of module (a helper library under that name) needs nothing.
pub(crate) fn native_modules(root: &Path) -> Result<Vec<NativeModule>> {
    let mut modules = Vec::new();
    for entry in WalkDir::new(root).sort_by_file_name() {
        let entry = entry.with_context(|| format!("{}: cannot be read", root.display()))?;
        let is_module = entry.file_type().is_file()
            && entry
                .path()
                .extension()
                .is_some_and(|extension| extension == "node");
        if !is_module {
            continue;
        }
        let bytes = fs_err::read(entry.path())?;
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if let Some(needs) = needs_of(&bytes) {
            modules.push(NativeModule {
                path: relative.to_path_buf(),
                needs,
            });
        }
    }
    Ok(modules)
}

/// What an ELF native module needs, from its dynamic symbols; `None` when it is not an
/// ELF file or not a Node module.
pub(crate) fn needs_of(bytes: &[u8]) -> Option<Needs> {
    let elf = goblin::elf::Elf::parse(bytes).ok()?;
    let mut napi = false;
    let mut registers = false;
    let mut napi_version = 1;
    for symbol in elf.dynsyms.iter() {
        let Some(name) = elf.dynstrtab.get_at(symbol.st_name) else {
            continue;
        };
        let defined = symbol.st_shndx != 0;
        if defined {
            if let Some(version) = name.strip_prefix("node_register_module_v") {
                if let Ok(version) = version.parse() {
                    return Some(Needs::ModuleVersion(version));
                }
            }
            napi |= name == "napi_register_module_v1";
        } else if name == "node_module_register" {
            registers = true;
        } else if let Some((version, _)) = NAPI_FUNCTIONS
            .iter()
            .find(|(_, functions)| functions.contains(&name))
        {
            napi_version = napi_version.max(*version);
        }
    }
    if registers {
        return Some(registered_version(&elf, bytes).map_or(Needs::BuildAbi, Needs::ModuleVersion));
    }
    napi.then_some(Needs::NodeApi(napi_version))
}

/// The first field (`nm_version`) of the static `_module` a `NODE_MODULE` addon
/// registers, read through the symbol table; `None` without one.
fn registered_version(elf: &goblin::elf::Elf<'_>, bytes: &[u8]) -> Option<u32> {
    let symbol = elf.syms.iter().find(|symbol| {
        symbol.st_size >= 4
            && symbol.st_type() == goblin::elf::sym::STT_OBJECT
            // `_module` in C; in C++ a file-local static is mangled `_ZL7_module`.
            && matches!(elf.strtab.get_at(symbol.st_name), Some("_module" | "_ZL7_module"))
    })?;
    let section = elf.section_headers.get(symbol.st_shndx)?;
    let offset = symbol
        .st_value
        .checked_sub(section.sh_addr)?
        .checked_add(section.sh_offset)?;
    let offset = usize::try_from(offset).ok()?;
    let field: [u8; 4] = bytes.get(offset..offset + 4)?.try_into().ok()?;
    Some(if elf.little_endian {
        u32::from_le_bytes(field)
    } else {
        u32::from_be_bytes(field)
    })
}

/// The payload's relation on `nodejs`: plain without native modules; bounded to the
/// release line of their NODE_MODULE_VERSION, and from below by the Node-API version they
/// need. `build_abi` is the NODE_MODULE_VERSION of the Node.js that ran the install, for
/// modules that do not tell theirs. An error when modules of two ABIs meet, or an ABI is
/// unknown.
pub(crate) fn nodejs_depends(
    modules: &[NativeModule],
    build_abi: Option<u32>,
) -> Result<Vec<String>, String> {
    let mut module_version: Option<(u32, &Path)> = None;
    let mut napi: Option<(u32, &Path)> = None;
    for module in modules {
        let needs = match (&module.needs, build_abi) {
            (Needs::BuildAbi, Some(version)) => Needs::ModuleVersion(version),
            (Needs::BuildAbi, None) => {
                return Err(format!(
                    "{}: a native module whose Node.js ABI cannot be read, and the Node.js \
                     that built it did not say its own",
                    module.path.display()
                ))
            }
            (needs, _) => needs.clone(),
        };
        match needs {
            Needs::ModuleVersion(version) => match module_version {
                Some((other, other_path)) if other != version => {
                    return Err(format!(
                        "native modules built for two Node.js ABIs: {} has NODE_MODULE_VERSION \
                         {other}, {} has {version}; rebuild them with one Node.js",
                        other_path.display(),
                        module.path.display()
                    ))
                }
                _ => module_version = Some((version, &module.path)),
            },
            Needs::NodeApi(version) => {
                if napi.is_none_or(|(other, _)| version > other) {
                    napi = Some((version, &module.path));
                }
            }
            Needs::BuildAbi => {}
        }
    }
    let mut relations = Vec::new();
    if let Some((version, path)) = module_version {
        let Some(&(_, major)) = MODULE_VERSIONS.iter().find(|(abi, _)| *abi == version) else {
            return Err(format!(
                "{}: NODE_MODULE_VERSION {version} is not a released Node.js line this \
                 debstage knows ({}); declare nodejs in [depends] packages and leave the \
                 module out, or update debstage",
                path.display(),
                MODULE_VERSIONS
                    .iter()
                    .map(|(abi, major)| format!("{abi} = Node {major}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        // `~` so that any Debian revision of the line's releases matches.
        relations.push(format!("nodejs (>= {major}~)"));
        relations.push(format!("nodejs (<< {}~)", major + 1));
    }
    if let Some((version, _)) = napi {
        let release = NAPI_RELEASES
            .iter()
            .rev()
            .find(|(napi_version, _)| *napi_version <= version)
            .map_or("10.0.0", |(_, release)| release);
        relations.push(format!("nodejs (>= {release})"));
    }
    if relations.is_empty() {
        relations.push("nodejs".to_string());
    }
    Ok(relations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, needs: Needs) -> NativeModule {
        NativeModule {
            path: PathBuf::from(path),
            needs,
        }
    }

    #[test]
    fn abi_bounds_the_release_line_and_napi_from_below() {
        assert_eq!(nodejs_depends(&[], None), Ok(vec!["nodejs".to_string()]));
        assert_eq!(
            nodejs_depends(&[module("a.node", Needs::ModuleVersion(108))], None),
            Ok(vec![
                "nodejs (>= 18~)".to_string(),
                "nodejs (<< 19~)".to_string()
            ])
        );
        assert_eq!(
            nodejs_depends(
                &[
                    module("a.node", Needs::NodeApi(4)),
                    module("b.node", Needs::NodeApi(9)),
                    module("c.node", Needs::BuildAbi),
                ],
                Some(115)
            ),
            Ok(vec![
                "nodejs (>= 20~)".to_string(),
                "nodejs (<< 21~)".to_string(),
                "nodejs (>= 18.17.0)".to_string()
            ])
        );
        assert_eq!(
            nodejs_depends(&[module("a.node", Needs::NodeApi(1))], None),
            Ok(vec!["nodejs (>= 10.0.0)".to_string()])
        );
        let error = nodejs_depends(
            &[
                module("a.node", Needs::ModuleVersion(108)),
                module("b.node", Needs::ModuleVersion(115)),
            ],
            None,
        )
        .expect_err("two ABIs");
        assert!(
            error.contains("a.node") && error.contains("b.node"),
            "{error}"
        );
        let error = nodejs_depends(&[module("x.node", Needs::ModuleVersion(999))], None)
            .expect_err("unknown ABI");
        assert!(nodejs_depends(&[module("y.node", Needs::BuildAbi)], None).is_err());
        assert!(
            error.contains("999") && error.contains("115 = Node 20"),
            "{error}"
        );
    }

    /// Compiles C source into a shared object with gcc and reads what it needs.
    fn needs_of_c(directory: &Path, name: &str, source: &str, stripped: bool) -> Option<Needs> {
        let c_file = directory.join(format!("{name}.c"));
        let module = directory.join(format!("{name}.node"));
        std::fs::write(&c_file, source).expect("write");
        let run = |command: &mut std::process::Command| {
            let output = command.output().expect("runs");
            assert!(
                output.status.success(),
                "{command:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(std::process::Command::new("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&module)
            .arg(&c_file));
        if stripped {
            run(std::process::Command::new("strip").arg(&module));
        }
        needs_of(&std::fs::read(&module).expect("read"))
    }

    #[test]
    fn modules_tell_their_abi_by_export_registration_or_node_api_imports() {
        let temp = tempfile::tempdir().expect("temp dir");
        let directory = temp.path();
        assert_eq!(
            needs_of_c(
                directory,
                "context",
                "int node_register_module_v127(void) { return 0; }\n",
                true
            ),
            Some(Needs::ModuleVersion(127))
        );
        let legacy = "struct module { int version; int flags; void *handle; };\n\
                      extern void node_module_register(void *);\n\
                      static struct module _module = { 108, 0, 0 };\n\
                      __attribute__((constructor)) static void registration(void) \
                      { node_module_register(&_module); }\n";
        assert_eq!(
            needs_of_c(directory, "legacy", legacy, false),
            Some(Needs::ModuleVersion(108))
        );
        assert_eq!(
            needs_of_c(directory, "legacy-stripped", legacy, true),
            Some(Needs::BuildAbi)
        );
        let napi = "extern int napi_create_date(void);\n\
                    int napi_register_module_v1(void) { return napi_create_date(); }\n";
        assert_eq!(
            needs_of_c(directory, "napi", napi, true),
            Some(Needs::NodeApi(5))
        );
        assert_eq!(
            needs_of_c(
                directory,
                "plain",
                "int helper(void) { return 1; }\n",
                false
            ),
            None
        );
        assert_eq!(needs_of(b"not an ELF file"), None);
    }

    #[test]
    fn registry_entries_are_in_order() {
        assert!(MODULE_VERSIONS.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(NAPI_RELEASES.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }
}
