//! `kind = "python"` on examples/pyapp (Pillow's compiled extensions, console scripts):
//! relocation to /opt, reproducibility, detected Depends, lintian; and the bad inputs.
//!
//! pip installs from a local wheel directory (`target/pyapp-wheels`, downloaded from PyPI
//! once) with `PIP_NO_INDEX`, so the tests are fast and do not depend on the index.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use crate::support::{copy_tree, debstage, example, project_root, run_fail, run_ok, stderr};

/// The wheels the example needs (its requirements and the project's build backend).
const WHEELS: &[&str] = &["Pillow==11.0.0", "flit_core==3.9.0"];

static DOWNLOAD: Mutex<()> = Mutex::new(());

/// The local wheel directory, filled from PyPI by Debian's pip the first time.
fn wheel_dir() -> PathBuf {
    let directory = project_root().join("target/pyapp-wheels");
    let _guard = DOWNLOAD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let has = |prefix: &str| {
        fs::read_dir(&directory)
            .map(|entries| {
                entries.filter_map(|entry| entry.ok()).any(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .to_lowercase()
                        .starts_with(prefix)
                })
            })
            .unwrap_or(false)
    };
    if !(has("pillow-11.0.0") && has("flit_core-3.9.0")) {
        run_ok(
            Command::new("/usr/bin/python3")
                .args(["-m", "pip", "download", "--disable-pip-version-check", "-q"])
                .args(["--only-binary", ":all:", "-d"])
                .arg(&directory)
                .args(WHEELS),
        );
    }
    directory
}

/// `debstage build` of a manifest with pip pointed at the local wheels.
fn build_command(manifest: &Path, out: &Path) -> Command {
    let mut command = debstage();
    command
        .args(["--quiet", "build", "--manifest"])
        .arg(manifest)
        .arg("--out")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", wheel_dir());
    command
}

/// The `major.minor` of Debian's /usr/bin/python3.
pub fn python_minor() -> String {
    let output = run_ok(
        Command::new("/usr/bin/python3")
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]),
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn field(deb: &Path, name: &str) -> String {
    let output = run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn all_files(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|entry| entry.ok())
        .filter(|entry| !entry.file_type().is_dir())
        .map(|entry| entry.into_path())
        .collect()
}

/// Runs a shell snippet with the extracted application directory (the release and its
/// layer) bound at /opt/pyapp, in a private mount namespace (a tmpfs over /opt), so that
/// nothing on the host changes.
fn run_at_release(application: &Path, script: &str) -> Output {
    run_ok(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-ec"])
            .arg(format!(
                "mount -t tmpfs none /opt; mkdir -p /opt/pyapp; \
                 mount --bind \"$1\" /opt/pyapp; {script}"
            ))
            .arg("sh")
            .arg(application),
    )
}

#[test]
fn pyapp_is_relocated_reproducible_and_lintian_clean() {
    let (temp, app) = example("pyapp");
    let first = temp.path().join("first");
    run_ok(&mut build_command(&app.join("debstage.toml"), &first));
    // A second copy at another path, built again: the same bytes.
    let other = temp.path().join("elsewhere/copy");
    fs::create_dir_all(other.parent().expect("parent")).expect("mkdir");
    copy_tree(&app, &other);
    let second = temp.path().join("second");
    run_ok(&mut build_command(&other.join("debstage.toml"), &second));
    // Pillow's compiled extensions are in the layer (issue 21): the release holds only
    // pure Python and is `all`.
    let payload_name = "pyapp-1.2.0_1.2.0-1_all.deb".to_string();
    let layer_name = crate::support::files_in(&first)
        .into_iter()
        .find(|name| name.starts_with("pyapp-layer-"))
        .expect("a layer package");
    assert!(
        layer_name.ends_with(&format!(
            "_1_{}.deb",
            String::from_utf8_lossy(
                &run_ok(Command::new("dpkg").arg("--print-architecture")).stdout
            )
            .trim()
        )),
        "{layer_name}"
    );
    let layer = first.join(&layer_name);
    for name in crate::support::files_in(&first) {
        assert_eq!(
            fs::read(first.join(&name)).expect("first"),
            fs::read(second.join(&name)).expect("second"),
            "{name} differs between two builds with the same SOURCE_DATE_EPOCH"
        );
    }
    let payload = first.join(&payload_name);
    assert!(payload.is_file(), "{payload_name} was not built");

    // Depends: the exact interpreter and the exact layer; the layer's: the interpreter
    // and the libraries that Pillow needs but does not bundle.
    let depends = field(&payload, "Depends");
    let relations: Vec<&str> = depends.split(", ").collect();
    assert!(
        relations.contains(&format!("python{}", python_minor()).as_str()),
        "{depends}"
    );
    let layer_package = layer_name.split('_').next().expect("name");
    assert!(
        relations.contains(&format!("{layer_package} (= 1)").as_str()),
        "{depends}"
    );
    let depends = field(&layer, "Depends");
    let relations: Vec<&str> = depends.split(", ").collect();
    assert!(
        relations.contains(&format!("python{}", python_minor()).as_str()),
        "{depends}"
    );
    assert!(
        relations
            .iter()
            .any(|relation| relation.starts_with("libc6 (>= ")),
        "{depends}"
    );
    // Bundled manylinux libraries (pillow.libs/libjpeg-*.so) are not depended on.
    assert!(!depends.contains("libjpeg"), "{depends}");

    // No file of the package names the build directory or the example's source path.
    let extracted = temp.path().join("extracted");
    for deb in [&payload, &layer] {
        run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&extracted));
    }
    let release = extracted.join("opt/pyapp/1.2.0");
    let needles = [
        "debstage-stage".to_string(),
        temp.path().to_string_lossy().into_owned(),
    ];
    for path in all_files(&extracted) {
        let bytes = match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => fs::read_link(&path)
                .expect("link")
                .to_string_lossy()
                .into_owned()
                .into_bytes(),
            _ => fs::read(&path).expect("read"),
        };
        for needle in &needles {
            assert!(
                !bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes()),
                "{} contains {needle}",
                path.display()
            );
        }
    }
    let pyvenv = fs::read_to_string(release.join("pyvenv.cfg")).expect("pyvenv.cfg");
    assert!(pyvenv.contains("home = /usr/bin\n"), "{pyvenv}");
    let script = fs::read_to_string(release.join("bin/pyapp")).expect("console script");
    assert!(
        script.starts_with("#!/opt/pyapp/1.2.0/bin/python\n"),
        "{script}"
    );
    let activate = fs::read_to_string(release.join("bin/activate")).expect("activate");
    assert!(activate.contains("/opt/pyapp/1.2.0"), "{activate}");
    assert!(
        release.join("etc/test.env").is_file(),
        "[environment] source was not copied"
    );
    // pip is not shipped: the release is immutable.
    assert!(!release.join("bin/pip").exists());

    // RECORD lists the rewritten console script with its new hash: pip's own check agrees.
    let record = fs::read_to_string(release.join(format!(
        "lib/python{}/site-packages/pyapp-1.2.0.dist-info/RECORD",
        python_minor()
    )))
    .expect("RECORD");
    assert!(!record.contains("direct_url.json"), "{record}");
    let line = record
        .lines()
        .find(|line| line.starts_with("../../../bin/pyapp,"))
        .expect("RECORD lists bin/pyapp");
    let hash = run_ok(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(
                "import base64, hashlib, sys; data = open(sys.argv[1], 'rb').read(); \
                 print('sha256=' + base64.urlsafe_b64encode(hashlib.sha256(data).digest())\
                 .decode().rstrip('=') + ',' + str(len(data)))",
            )
            .arg(release.join("bin/pyapp")),
    );
    assert_eq!(
        line.trim_start_matches("../../../bin/pyapp,"),
        String::from_utf8_lossy(&hash.stdout).trim()
    );

    // The .pyc files are hash-based and name /opt paths.
    let pyc = fs::read(release.join(format!(
        "lib/python{}/site-packages/pyapp/__pycache__/server.cpython-{}.pyc",
        python_minor(),
        python_minor().replace('.', "")
    )))
    .expect("server.pyc");
    assert_eq!(pyc[4] & 1, 1, "the .pyc is not hash-based (PEP 552 flags)");
    let opt_path = b"/opt/pyapp/1.2.0/lib/python";
    assert!(pyc.windows(opt_path.len()).any(|window| window == opt_path));

    // At its release directory the environment runs, Pillow from the layer, and writes
    // nothing there.
    let application = extracted.join("opt/pyapp");
    let before = all_files(&application).len();
    let output = run_at_release(
        &application,
        "/opt/pyapp/1.2.0/bin/pyapp --check; \
         /opt/pyapp/1.2.0/bin/python -c 'import sys, PIL._imaging; print(sys.prefix); \
         print(PIL._imaging.__file__)'",
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("pyapp 1.2.0: badge of"), "{text}");
    assert!(text.contains("/opt/pyapp/1.2.0\n"), "{text}");
    assert!(text.contains("/opt/pyapp/.layers/"), "{text}");
    assert_eq!(
        all_files(&application).len(),
        before,
        "running wrote into the release or its layer"
    );

    // lintian: nothing beyond the shipped overrides.
    crate::support::assert_lintian_clean(&[&payload, &layer]);
}

/// A one-file app whose manifest is `debstage.toml` with the given `[environment]` lines.
fn app(environment: &str) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let manifest = temp.path().join("debstage.toml");
    fs::write(
        &manifest,
        format!(
            "[package]\nname = \"badpy\"\nversion = \"1.0\"\n\
             maintainer = \"Test <test@example.com>\"\ndescription = \"Bad input\"\n\
             [environment]\nkind = \"python\"\n{environment}\n"
        ),
    )
    .expect("write manifest");
    (temp, manifest)
}

fn build_error(manifest: &Path) -> String {
    let out = manifest.parent().expect("parent").join("out");
    let output = run_fail(&mut build_command(manifest, &out));
    assert!(
        crate::support::files_in(&out)
            .iter()
            .all(|name| !name.ends_with(".deb")),
        "a failed build left packages"
    );
    stderr(&output)
}

#[test]
fn missing_requirements_file_is_named() {
    let (_temp, manifest) = app("requirements = \"requirements.txt\"");
    let message = build_error(&manifest);
    assert!(message.contains("[environment] requirements"), "{message}");
    assert!(
        message.contains("requirements.txt: no such file"),
        "{message}"
    );
}

#[test]
fn failing_pip_shows_its_error() {
    let (temp, manifest) = app("requirements = \"requirements.txt\"");
    fs::write(
        temp.path().join("requirements.txt"),
        "no-such-distribution-for-debstage==1.0\n",
    )
    .expect("write");
    let message = build_error(&manifest);
    assert!(message.contains("pip"), "{message}");
    assert!(message.contains("exit code 1"), "{message}");
    assert!(
        message.contains("no-such-distribution-for-debstage"),
        "pip's own words are missing: {message}"
    );
}

#[test]
fn interpreters_must_be_installed_debian_ones() {
    let (temp, manifest) =
        app("requirements = \"requirements.txt\"\ninterpreter = \"/usr/bin/python3.99\"");
    fs::write(temp.path().join("requirements.txt"), "Pillow==11.0.0\n").expect("write");
    let message = build_error(&manifest);
    assert!(message.contains("/usr/bin/python3.99"), "{message}");
    assert!(message.contains("not installed"), "{message}");

    // A link elsewhere to Debian's interpreter still is not /usr/bin, as pyenv's shims are not.
    let link = temp.path().join("shims/python3");
    fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink("/usr/bin/python3", &link).expect("symlink");
    let mut candidates = vec![link];
    // This machine's first python3 on PATH (pyenv's here), when it is not Debian's.
    if let Ok(output) = Command::new("sh")
        .args(["-c", "command -v python3"])
        .output()
    {
        let found = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !found.is_empty() && !found.starts_with("/usr/bin/") {
            candidates.push(PathBuf::from(found));
        }
    }
    for interpreter in candidates {
        let (temp, manifest) = app(&format!(
            "requirements = \"requirements.txt\"\ninterpreter = \"{}\"",
            interpreter.display()
        ));
        fs::write(temp.path().join("requirements.txt"), "Pillow==11.0.0\n").expect("write");
        let message = build_error(&manifest);
        assert!(message.contains("[environment] interpreter"), "{message}");
        assert!(message.contains("is not under /usr/bin"), "{message}");
    }
}

/// A minimal flit project, installable offline with the cached flit_core.
fn write_project(directory: &Path, name: &str) {
    fs::create_dir_all(directory.join(name)).expect("mkdir");
    fs::write(
        directory.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"flit_core >=3.4,<4\"]\n\
             build-backend = \"flit_core.buildapi\"\n[project]\nname = \"{name}\"\n\
             version = \"0.1\"\ndescription = \"x\"\n"
        ),
    )
    .expect("write");
    fs::write(directory.join(name).join("__init__.py"), "VALUE = 1\n").expect("write");
}

#[test]
fn editable_installs_are_refused() {
    // In the requirements file itself: refused before pip runs.
    let (temp, manifest) = app("requirements = \"requirements.txt\"");
    write_project(&temp.path().join("lib"), "locallib");
    fs::write(temp.path().join("requirements.txt"), "-e ./lib\n").expect("write");
    let message = build_error(&manifest);
    assert!(message.contains("editable"), "{message}");
    assert!(message.contains("requirements.txt line 1"), "{message}");

    // Hidden in a nested requirements file: found in what pip installed.
    fs::write(temp.path().join("requirements.txt"), "-r nested.txt\n").expect("write");
    fs::write(
        temp.path().join("nested.txt"),
        format!("-e {}\n", temp.path().join("lib").display()),
    )
    .expect("write");
    let message = build_error(&manifest);
    assert!(message.contains("editable"), "{message}");
    assert!(message.contains("locallib"), "{message}");
}
