//! `kind = "node"`: an application with a native addon (a local `binding.gyp` module built
//! by node-gyp against the machine's Node.js headers) and an npm package that ships its
//! dotfiles. The payload's Depends bound `nodejs` to the addon's ABI; node-gyp's
//! intermediates, the dotfiles and the application's own `test/` are left out; lintian
//! finds nothing; the addon loads.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::node_managers::SINGLE_PAYLOAD;
use crate::support::{build, run_ok, stdout};

/// Whether this machine has what a node build needs (node, npm, a C++ compiler, make);
/// under CI a missing tool fails the test, elsewhere it is said loudly and skipped.
pub(crate) fn node_tools_present(test: &str) -> bool {
    crate::support::tools_present(
        test,
        &[
            ("node", "nodejs"),
            ("npm", "npm"),
            ("g++", "g++"),
            ("make", "make"),
        ],
    )
}

/// Writes the application into `directory`: `server.js`; the addon `vendor/addon` (a
/// `NODE_MODULE` in C++ with a `binding.gyp`), installed as a copy (`install-links`); the
/// package `vendor/dotty-1.0.0.tgz`, packed with the dotfiles some npm packages ship; and
/// the lock file, made by npm offline. Returns the manifest (with `extra` appended).
pub(crate) fn node_application(directory: &Path, version: &str, extra: &str) -> PathBuf {
    let addon = directory.join("vendor/addon");
    fs::create_dir_all(&addon).expect("mkdir");
    fs::write(
        addon.join("binding.gyp"),
        r#"{ "targets": [ { "target_name": "addon", "sources": [ "addon.cc" ] } ] }"#,
    )
    .expect("write");
    fs::write(
        addon.join("addon.cc"),
        r#"#include <node.h>
namespace {
void Hello(const v8::FunctionCallbackInfo<v8::Value>& args) {
  args.GetReturnValue().Set(
      v8::String::NewFromUtf8(args.GetIsolate(), "native hello").ToLocalChecked());
}
void Init(v8::Local<v8::Object> exports) { NODE_SET_METHOD(exports, "hello", Hello); }
}  // namespace
NODE_MODULE(NODE_GYP_MODULE_NAME, Init)
"#,
    )
    .expect("write");
    fs::write(
        addon.join("package.json"),
        r#"{ "name": "addon", "version": "1.0.0", "main": "index.js", "gypfile": true }"#,
    )
    .expect("write");
    fs::write(
        addon.join("index.js"),
        "module.exports = require('./build/Release/addon.node');\n",
    )
    .expect("write");

    let dotty = tempfile::tempdir().expect("temp dir");
    let package = dotty.path().join("package");
    fs::create_dir_all(package.join(".github")).expect("mkdir");
    fs::write(
        package.join("package.json"),
        r#"{ "name": "dotty", "version": "1.0.0", "main": "index.js" }"#,
    )
    .expect("write");
    fs::write(package.join("index.js"), "module.exports = 42;\n").expect("write");
    // A module shipped executable without a #! line, and a command that is a script.
    fs::create_dir_all(package.join("bin")).expect("mkdir");
    for (name, text) in [
        ("data.js", "module.exports = {};\n"),
        (
            "bin/dotty",
            "#!/usr/bin/env node\nconsole.log(require('..'));\n",
        ),
    ] {
        fs::write(package.join(name), text).expect("write");
        fs::set_permissions(
            package.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
    }
    for dotfile in [
        ".npmignore",
        ".eslintrc.yml",
        ".travis.yml",
        ".gitignore",
        ".github/ci.yml",
    ] {
        fs::write(package.join(dotfile), "# the author's\n").expect("write");
    }
    crate::node_managers::pack(dotty.path(), &directory.join("vendor/dotty-1.0.0.tgz"));

    fs::write(
        directory.join("package.json"),
        r#"{
  "name": "nodeapp",
  "version": "1.0.0",
  "private": true,
  "dependencies": {
    "addon": "file:vendor/addon",
    "dotty": "file:vendor/dotty-1.0.0.tgz"
  }
}
"#,
    )
    .expect("write");
    fs::write(directory.join(".npmrc"), "install-links=true\n").expect("write");
    fs::write(directory.join(".eslintrc.json"), "{}\n").expect("write");
    // The application's own tests, which a release leaves out.
    fs::create_dir_all(directory.join("test")).expect("mkdir");
    fs::write(
        directory.join("test/server.test.js"),
        "require('assert').ok(require('addon'));\n",
    )
    .expect("write");
    fs::write(
        directory.join("server.js"),
        "console.log(require('addon').hello(), require('dotty'));\n",
    )
    .expect("write");
    run_ok(
        Command::new("npm")
            .args([
                "install",
                "--package-lock-only",
                "--offline",
                "--no-audit",
                "--no-fund",
            ])
            .current_dir(directory),
    );
    let manifest = directory.join("debstage.toml");
    fs::write(
        &manifest,
        format!(
            "[package]\nname = \"nodeapp\"\nversion = \"{version}\"\n\
             maintainer = \"Test <test@example.com>\"\ndescription = \"Node greeting\"\n\
             [environment]\nkind = \"node\"\n[stages]\nnames = [\"test\"]\n{extra}"
        ),
    )
    .expect("write manifest");
    manifest
}

/// The major version of the machine's Node.js.
fn node_major() -> u32 {
    let version = stdout(&run_ok(
        Command::new("node").args(["-p", "process.versions.node"]),
    ));
    version
        .trim()
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("node's version {version:?}"))
}

fn listing(deb: &Path) -> String {
    stdout(&run_ok(Command::new("dpkg-deb").arg("-c").arg(deb)))
}

fn architecture() -> String {
    stdout(&run_ok(Command::new("dpkg").arg("--print-architecture")))
        .trim()
        .to_string()
}

#[test]
fn a_node_app_with_a_native_addon_depends_on_its_abi_and_ships_no_intermediates() {
    if !node_tools_present("node kind") {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let app = temp.path().join("app");
    let out = temp.path().join("out");
    let manifest = node_application(&app, "1.0", SINGLE_PAYLOAD);
    // Against the machine's own headers (debstage points node-gyp at them).
    let document = build(&manifest, &out, &[]);
    let payload = out.join(format!("nodeapp-1.0_1.0-1_{}.deb", architecture()));
    assert_eq!(
        document["packages"][0]["file"],
        *payload.file_name().expect("name").to_string_lossy()
    );

    let major = node_major();
    let depends = stdout(&run_ok(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(&payload)
            .arg("Depends"),
    ));
    assert!(
        depends.contains(&format!("nodejs (>= {major}~)"))
            && depends.contains(&format!("nodejs (<< {}~)", major + 1)),
        "Depends: {depends}"
    );

    let files = listing(&payload);
    let release = "./opt/nodeapp/1.0/";
    assert!(
        files.contains(&format!(
            "{release}node_modules/addon/build/Release/addon.node"
        )),
        "{files}"
    );
    assert!(
        files.contains(&format!("{release}node_modules/dotty/index.js")),
        "{files}"
    );
    for left_out in [
        ".o\n",
        "/Makefile",
        "config.gypi",
        "obj.target",
        "/.deps",
        "node_gyp_bins",
        "dotty/.npmignore",
        "dotty/.eslintrc.yml",
        "dotty/.travis.yml",
        "dotty/.gitignore",
        "dotty/.github",
        "1.0/.eslintrc.json",
        "node_modules/addon/addon.cc",
        "1.0/test/",
    ] {
        assert!(!files.contains(left_out), "{left_out} shipped:\n{files}");
    }
    let mode_of = |suffix: &str| {
        files
            .lines()
            .find(|line| line.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} not shipped:\n{files}"))
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(mode_of("node_modules/dotty/data.js"), "-rw-r--r--");
    assert_eq!(mode_of("node_modules/dotty/bin/dotty"), "-rwxr-xr-x");
    let module_line = files
        .lines()
        .find(|line| line.ends_with("build/Release/addon.node"))
        .expect("the module");
    assert!(module_line.starts_with("-rw-r--r--"), "{module_line}");

    crate::support::assert_lintian_clean(&[&payload]);

    // The module loads in this machine's Node.js, from the unpacked release.
    let unpacked = temp.path().join("unpacked");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&payload)
            .arg(&unpacked),
    );
    let output = run_ok(
        Command::new("node")
            .arg("server.js")
            .current_dir(unpacked.join("opt/nodeapp/1.0")),
    );
    assert_eq!(stdout(&output), "native hello 42\n");

    // `[files] keep` brings the groups back.
    let kept_app = temp.path().join("kept");
    let manifest = node_application(
        &kept_app,
        "1.0",
        &format!(
            "{SINGLE_PAYLOAD}[files]\nkeep = [\"node-gyp-build\", \"node-dotfiles\", \"node-build-only\"]\n"
        ),
    );
    let kept_out = temp.path().join("kept-out");
    build(&manifest, &kept_out, &[]);
    let files = listing(&kept_out.join(payload.file_name().expect("name")));
    for kept in [
        "addon/build/Makefile",
        "dotty/.npmignore",
        "dotty/.github/ci.yml",
        "node_modules/addon/addon.cc",
        "1.0/test/server.test.js",
    ] {
        assert!(files.contains(kept), "{kept} not kept:\n{files}");
    }
}
