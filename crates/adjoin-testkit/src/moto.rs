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
        let port = free_port()?;
        let guard = Command::new("sh")
            .args(["-c", "moto_server -H 127.0.0.1 -p \"$1\" >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid", "moto", &port.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(Error::Start)?;
        Moto::on_port(port, Some(guard))
    }

    /// The server about to listen on loopback `port`, once it does (30 s at the most).
    fn on_port(port: u16, guard: Option<Child>) -> Result<Moto, Error> {
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _guard: guard,
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

/// A moto server that outlives the process that started it: a sandbox to try `adjoin`
/// by hand (`cargo xtask demo --keep`). Stop it with `kill` and its pid.
pub struct DetachedMoto {
    pub moto: Moto,
    pub pid: u32,
}

impl DetachedMoto {
    /// Starts `moto_server` on a free loopback port in its own session, so it keeps
    /// running after this process exits.
    pub fn start() -> Result<DetachedMoto, Error> {
        let port = free_port()?;
        let out = Command::new("sh")
            .args([
                "-c",
                "setsid moto_server -H 127.0.0.1 -p \"$1\" </dev/null >/dev/null 2>&1 & echo $!",
                "moto",
                &port.to_string(),
            ])
            .output()
            .map_err(Error::Start)?;
        let pid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| Error::NotReady(format!("moto_server on port {port} (no pid)")))?;
        let moto = Moto::on_port(port, None)?;
        Ok(DetachedMoto { moto, pid })
    }
}

/// A loopback port free now, for a server to listen on.
fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(Error::Start)?
        .port())
}
