//! `syslog: <facility>` (and `-S`): log lines go to the local syslog daemon over its Unix
//! datagram socket, one message per event in RFC 3164's format (`<PRI>xacctd[PID]: text`; the
//! syslog daemon adds the time and host).

use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Where messages go; `XACCT_SYSLOG_SOCKET` overrides it (tests use their own socket).
const DEV_LOG: &str = "/dev/log";

fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        f => 16 + f.strip_prefix("local")?.parse::<u8>().ok().filter(|n| *n <= 7)?,
    })
}

#[derive(Clone)]
pub struct Syslog {
    sock: Arc<UnixDatagram>,
    facility: u8,
    tag: String,
}

impl Syslog {
    pub fn new(facility: &str) -> Result<Syslog> {
        let facility = facility_code(facility).with_context(|| format!("syslog facility '{facility}'"))?;
        let path = std::env::var("XACCT_SYSLOG_SOCKET").unwrap_or_else(|_| DEV_LOG.to_string());
        let sock = UnixDatagram::unbound().context("syslog socket")?;
        sock.connect(&path).with_context(|| format!("syslog: cannot reach {path}"))?;
        // A syslog daemon that stops reading must not stop the threads that log.
        sock.set_nonblocking(true).context("syslog socket")?;
        Ok(Syslog { sock: Arc::new(sock), facility, tag: format!("xacctd[{}]", std::process::id()) })
    }
}

pub struct Message {
    sys: Syslog,
    severity: u8,
}

impl Write for Message {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let line = format!("<{}>{}: {}", self.sys.facility * 8 + self.severity, self.sys.tag, text.trim_end());
        // A full queue (a busy syslog daemon) gets up to 100 ms; after that, or when the
        // syslog daemon is gone, the message is lost rather than the daemon blocked.
        for _ in 0..100 {
            match self.sys.sock.send(line.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                _ => break,
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = Message;

    fn make_writer(&'a self) -> Message {
        Message { sys: self.clone(), severity: 6 }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Message {
        let severity = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        Message { sys: self.clone(), severity }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn facilities() {
        assert_eq!(super::facility_code("daemon"), Some(3));
        assert_eq!(super::facility_code("local7"), Some(23));
        assert_eq!(super::facility_code("local8"), None);
    }
}
