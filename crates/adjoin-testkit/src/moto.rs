//! Starting moto server, or using one that is already running (`ADJOIN_MOTO_URL`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// A running moto server.
pub struct Moto {
    endpoint: String,
    /// The guard process: it stops moto when our end of its stdin closes, which
    /// happens when this process exits, even if it never runs destructors.
    _guard: Option<Child>,
}

impl Moto {
    /// Uses `ADJOIN_MOTO_URL` when set, else starts `moto_server` on a free loopback port.
    pub fn start() -> Result<Moto, Error> {
        if let Ok(url) = std::env::var("ADJOIN_MOTO_URL") {
            if !url.is_empty() {
                return Ok(Moto {
                    endpoint: url.trim_end_matches('/').to_owned(),
                    _guard: None,
                });
            }
        }
        Self::start_private()
    }

    /// Starts a fresh `moto_server` of its own on a free loopback port.
    pub fn start_private() -> Result<Moto, Error> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(Error::Start)?
            .port();
        let guard = Command::new("sh")
            .args(["-c", "moto_server -H 127.0.0.1 -p \"$1\" >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid", "moto", &port.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(Error::Start)?;
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _guard: Some(guard),
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(Error::NotReady(moto.endpoint.clone()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The environment that points the AWS SDK (and `adjoin`) at this emulator.
    pub fn env(&self, region: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", region.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}
