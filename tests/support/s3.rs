//! S3-compatible stores for the publish-target tests, started on 127.0.0.1 and stopped
//! when dropped:
//! - Garage (a real distributed store, written in Rust), single node, its own data
//!   directory, layout, key and bucket made here, the bucket served by its website
//!   endpoint for apt. The binary is built once by `make garage` into
//!   `$HOME/.cache/debstage/tools/garage-2.5.0/bin/garage` (or `DEBSTAGE_GARAGE`).
//! - moto's server mode (PyPI `moto[server]`, a mock of AWS S3) for the one path Garage
//!   lacks: conditional writes (`If-None-Match: *`, `If-Match`), which AWS S3, MinIO and
//!   R2 honour. Its venv is made with Debian's python3 and cached under target/tmp.
//!
//! A store that cannot be had fails the test under CI and is skipped loudly elsewhere.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{stderr, stdout};

/// What the venv holds.
const MOTO: &str = "moto[server]==5.2.5";

/// The Garage version `make garage` builds.
pub const GARAGE_VERSION: &str = "2.5.0";

pub use super::shout;

/// Fails under CI, skips loudly elsewhere; returns None for the caller to return.
pub fn unavailable<T>(what: &str, reason: &str) -> Option<T> {
    super::cannot_run(what, reason);
    None
}

/// A running store with one bucket, readable anonymously over HTTP.
pub struct S3 {
    child: Child,
    _directory: tempfile::TempDir,
    /// The S3 API endpoint (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Credentials of a key allowed to write the bucket.
    pub access_key: String,
    pub secret_key: String,
    /// The base URL apt reads the bucket's root at.
    pub http_base: String,
    /// The host name apt must resolve to 127.0.0.1 (Garage's website endpoint finds the
    /// bucket by the Host header), if any.
    pub http_host: Option<String>,
    /// Whether the store honours conditional writes.
    pub conditional: bool,
    /// moto's venv python (to seed objects with boto3); None for Garage unless
    /// [`S3::with_boto`].
    python: Option<PathBuf>,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn wait_for_port(child: &mut Child, port: u16, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut text = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut text);
            }
            return Err(format!("{what} exited ({status}): {text}"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("{what} did not listen on port {port} within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The cached venv with moto; Err says why it cannot be had.
fn moto_venv() -> Result<PathBuf, String> {
    crate::support::cached_venv("moto-venv", MOTO, "bin/moto_server")
}

/// The Garage binary: `DEBSTAGE_GARAGE`, else the one `make garage` builds.
pub fn garage_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DEBSTAGE_GARAGE") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(format!(
        ".cache/debstage/tools/garage-{GARAGE_VERSION}/bin/garage"
    ))
}

impl S3 {
    /// moto's S3 server with bucket `bucket`, readable by anyone (a bucket policy).
    pub fn moto(what: &str) -> Option<S3> {
        let venv = match moto_venv() {
            Ok(venv) => venv,
            Err(reason) => return unavailable(what, &reason),
        };
        let directory = tempfile::tempdir().expect("temporary directory");
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = Command::new(venv.join("bin/moto_server"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start moto_server: {error}"));
            if wait_for_port(&mut child, port, "moto_server").is_err() {
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            let endpoint = format!("http://127.0.0.1:{port}");
            let s3 = S3 {
                child,
                _directory: directory,
                endpoint: endpoint.clone(),
                region: "us-east-1".into(),
                bucket: "apt".into(),
                access_key: "debstage-test".into(),
                secret_key: "debstage-test-secret".into(),
                http_base: format!("{endpoint}/apt"),
                http_host: None,
                conditional: true,
                python: Some(venv.join("bin/python")),
            };
            s3.boto(
                "import json\n\
                 c.create_bucket(Bucket='apt')\n\
                 c.put_bucket_policy(Bucket='apt', Policy=json.dumps({'Version': '2012-10-17', \
                 'Statement': [{'Effect': 'Allow', 'Principal': '*', 'Action': 's3:GetObject', \
                 'Resource': 'arn:aws:s3:::apt/*'}]}))\n",
            );
            return Some(s3);
        }
        unavailable(what, "moto_server did not start on any of 5 ports")
    }

    /// A single-node Garage with bucket `debstage-apt`, its website endpoint serving it
    /// at `http://debstage-apt.web.garage:PORT/` (the name must resolve to 127.0.0.1
    /// where apt runs: [`S3::http_host`]).
    pub fn garage(what: &str) -> Option<S3> {
        S3::garage_with(what, true)
    }

    /// [`S3::garage`] with a private bucket: no website endpoint, no anonymous read;
    /// [`S3::http_base`] is the bucket on the S3 API, path style (what an anonymous GET
    /// would ask). The API also answers virtual-host style at `BUCKET.s3.garage:PORT`.
    pub fn private_garage(what: &str) -> Option<S3> {
        S3::garage_with(what, false)
    }

    fn garage_with(what: &str, website: bool) -> Option<S3> {
        let binary = garage_binary();
        if !binary.is_file() {
            return unavailable(
                what,
                &format!(
                    "{} is missing: `make garage` builds it once (47 minutes on 2 shared cores), \
                     or set DEBSTAGE_GARAGE",
                    binary.display()
                ),
            );
        }
        let directory = tempfile::tempdir().expect("temporary directory");
        let rpc = free_port();
        let api = free_port();
        let web = free_port();
        let admin = free_port();
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
            .collect();
        let config = directory.path().join("garage.toml");
        fs::write(
            &config,
            format!(
                "metadata_dir = \"{dir}/meta\"\ndata_dir = \"{dir}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{api}\"\n\
                 root_domain = \".s3.garage\"\n\
                 [s3_web]\nbind_addr = \"127.0.0.1:{web}\"\nroot_domain = \".web.garage\"\n\
                 index = \"index.html\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                dir = directory.path().display()
            ),
        )
        .expect("garage.toml");
        let mut child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        if let Err(reason) = wait_for_port(&mut child, api, "garage server") {
            panic!("{reason}");
        }
        let garage = |arguments: &[&str]| -> String {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let output = Command::new(&binary)
                    .arg("-c")
                    .arg(&config)
                    .args(arguments)
                    .output()
                    .unwrap_or_else(|error| panic!("cannot run garage: {error}"));
                if output.status.success() {
                    return stdout(&output);
                }
                if Instant::now() > deadline {
                    panic!(
                        "garage {arguments:?} failed:\n{}\n{}",
                        stdout(&output),
                        stderr(&output)
                    );
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        };
        let node = garage(&["node", "id", "-q"]);
        let node = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        garage(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage(&["layout", "apply", "--version", "1"]);
        let bucket = "debstage-apt";
        garage(&["bucket", "create", bucket]);
        let key = garage(&["key", "create", "debstage-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|line| {
                    let (label, value) = line.split_once(':')?;
                    (label.trim().eq_ignore_ascii_case(name)).then(|| value.trim().to_string())
                })
                .unwrap_or_else(|| panic!("garage key create printed no {name}:\n{key}"))
        };
        let access_key = field("Key ID");
        let secret_key = field("Secret key");
        garage(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            "debstage-test",
        ]);
        let endpoint = format!("http://127.0.0.1:{api}");
        let (http_base, http_host) = if website {
            garage(&["bucket", "website", "--allow", bucket]);
            let host = format!("{bucket}.web.garage");
            (format!("http://{host}:{web}"), Some(host))
        } else {
            (format!("{endpoint}/{bucket}"), None)
        };
        Some(S3 {
            child,
            _directory: directory,
            endpoint,
            region: "garage".into(),
            bucket: bucket.into(),
            access_key,
            secret_key,
            http_base,
            http_host,
            conditional: false,
            python: None,
        })
    }

    /// Lets [`S3::boto`] reach a Garage too, with moto's venv, to put objects there as
    /// another tool would.
    pub fn with_boto(mut self, what: &str) -> Option<S3> {
        match moto_venv() {
            Ok(venv) => {
                self.python = Some(venv.join("bin/python"));
                Some(self)
            }
            Err(reason) => unavailable(what, &reason),
        }
    }

    /// Runs Python with a boto3 client `c` of the store (moto, or a Garage made
    /// [`S3::with_boto`]).
    pub fn boto(&self, code: &str) -> String {
        let python = self.python.as_ref().expect("boto3 is in moto's venv only");
        let script = format!(
            "import boto3\nc = boto3.client('s3', endpoint_url='{}', aws_access_key_id='{}', \
             aws_secret_access_key='{}', region_name='{}')\n{code}",
            self.endpoint, self.access_key, self.secret_key, self.region
        );
        let output = Command::new(python)
            .arg("-c")
            .arg(&script)
            .output()
            .expect("python");
        assert!(
            output.status.success(),
            "boto3 script failed:\n{script}\n{}",
            stderr(&output)
        );
        stdout(&output)
    }

    /// The `[[publish.targets]]` entry of this store, under `prefix`.
    pub fn target_toml(&self, name: &str, prefix: &str, extra: &str) -> String {
        format!(
            "\n[[publish.targets]]\nname = \"{name}\"\nurl = \"s3://{}/{prefix}\"\n\
             endpoint = \"{}\"\nregion = \"{}\"\npath_style = true\n{extra}",
            self.bucket, self.endpoint, self.region
        )
    }

    /// The environment a writer needs (credentials; no profile file).
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
        ]
    }

    /// An anonymous GET of `path` under the bucket (as apt makes it): status, headers
    /// (lower-case names) and body.
    pub fn get(&self, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let answer = super::http::get(&self.http_base, path);
        (answer.status, answer.headers, answer.body)
    }
}

/// HTTPS in front of a store's plain-HTTP S3 API, for clients that speak only HTTPS
/// (`apt-transport-s3` always builds `https://BUCKET.ENDPOINT/KEY`): stunnel (Debian's
/// `stunnel4`, a well-kept TLS terminator) on a loopback port with a throwaway
/// self-signed certificate for `host`, made by the openssl command line. Stopped when
/// dropped.
pub struct TlsFront {
    child: Child,
    directory: tempfile::TempDir,
    /// The loopback port the TLS side listens on.
    pub port: u16,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsFront {
    /// Terminates TLS for `host` (and its subdomains) on a free port and forwards to
    /// `endpoint` (`http://127.0.0.1:PORT`); None (failing under CI) when stunnel or
    /// openssl is missing.
    pub fn new(what: &str, endpoint: &str, host: &str) -> Option<TlsFront> {
        for tool in ["stunnel4", "openssl"] {
            let found = Command::new(tool)
                .arg("-version")
                .stdin(Stdio::null())
                .output()
                .is_ok();
            if !found {
                return unavailable(
                    what,
                    &format!("{tool} is missing (apt-get install stunnel4 openssl)"),
                );
            }
        }
        let backend = endpoint
            .strip_prefix("http://")
            .expect("a plain-HTTP endpoint");
        let directory = tempfile::tempdir().expect("temporary directory");
        let cert = directory.path().join("cert.pem");
        let key = directory.path().join("key.pem");
        let output = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:prime256v1")
            .args(["-nodes", "-days", "2", "-subj"])
            .arg(format!("/CN={host}"))
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{host},DNS:*.{host}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            output.status.success(),
            "openssl req failed:\n{}",
            stderr(&output)
        );
        for _attempt in 0..5 {
            let port = free_port();
            let config = directory.path().join("stunnel.conf");
            fs::write(
                &config,
                format!(
                    "foreground = yes\npid =\n[s3]\naccept = 127.0.0.1:{port}\n\
                     connect = {backend}\ncert = {}\nkey = {}\n",
                    cert.display(),
                    key.display()
                ),
            )
            .expect("stunnel.conf");
            let mut child = Command::new("stunnel4")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start stunnel4: {error}"));
            match wait_for_port(&mut child, port, "stunnel4") {
                Ok(()) => {
                    return Some(TlsFront {
                        child,
                        directory,
                        port,
                    })
                }
                Err(reason) => {
                    shout(&format!("stunnel4 on port {port}: {reason}"));
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("stunnel4 did not start on any of 5 ports");
    }

    /// The certificate (PEM) a client must trust.
    pub fn certificate(&self) -> Vec<u8> {
        fs::read(self.directory.path().join("cert.pem")).expect("cert.pem")
    }
}
