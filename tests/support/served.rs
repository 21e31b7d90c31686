//! `debstage repo serve` on a free loopback port for a test, killed when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `repo serve`.
pub struct Served {
    pub child: Child,
    pub address: SocketAddr,
}

impl Served {
    /// Starts the command `command(address)` makes for a free loopback address (the
    /// caller's `repo serve --addr ADDRESS`, from its own repository) and waits until it
    /// listens.
    pub fn start(command: impl FnOnce(&str) -> Command) -> Served {
        let address = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let child = command(&address.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let started = Instant::now();
        while TcpStream::connect(address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "repo serve does not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Served { child, address }
    }

    /// `http://ADDRESS`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
