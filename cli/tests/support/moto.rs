//! moto_server on 127.0.0.1 for the `fleet aws` tests, and `fleet aws …` pointed at it with
//! test credentials and nothing of the user's AWS setup.
//!
//! moto comes from `scripts/setup.sh aws` (`$HOME/.cache/fleet/venv/bin/moto_server`) or
//! PATH; without it the test fails, saying so.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The region the tests use.
pub const REGION: &str = "us-east-1";

/// A moto server, killed when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let venv = home.map(|h| h.join(".cache/fleet/venv/bin/moto_server"));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("moto_server"));
    venv.into_iter().chain(on_path).find(|p| p.is_file())
}

pub fn start_moto() -> Moto {
    let Some(bin) = moto_binary() else {
        panic!(
            "moto_server not found on PATH or at ~/.cache/fleet/venv/bin/moto_server: \
             install it with `scripts/setup.sh aws` (pip: 'moto[server]>=5,<6')"
        );
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    moto
}

/// `fleet aws …` against moto, with test credentials and nothing from the user's AWS setup.
pub fn fleet_aws(moto: &Moto, args: &[&str]) -> Command {
    let mut c = super::fleet();
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_IOT",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_CLOUDFORMATION",
    ] {
        c.env_remove(var);
    }
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/nonexistent/fleet-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/fleet-test/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .arg("aws")
        .args(args)
        .args(["--endpoint-url", &moto.url]);
    c
}
