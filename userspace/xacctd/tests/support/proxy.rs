//! A TCP proxy for outage tests: put it between the daemon and a database, then `cut()` to make
//! the database vanish (every open connection closed at once, new ones closed on accept, so
//! clients see a dead server right away rather than after a TCP timeout) and `restore()` to
//! bring it back. Plain threads and blocking sockets: a handful of connections, test-only.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    stop: AtomicBool,
    /// Both sockets of every forwarded connection, to shut them down on `cut`.
    open: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    accepted: AtomicU64,
    forwarded: AtomicU64,
    refused: AtomicU64,
}

impl Shared {
    fn close_all(&self) {
        let conns = std::mem::take(&mut *self.open.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, a, b) in conns {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    fn forget(&self, id: u64) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| c.0 != id);
    }
}

pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("proxy: local address");
        // Non-blocking accept polled every few ms, so that Drop can stop the thread without
        // having to connect to itself.
        listener.set_nonblocking(true).expect("proxy: non-blocking listener");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, upstream, s))
            .expect("proxy: spawn acceptor");
        Proxy { addr, upstream, shared, acceptor: Some(acceptor) }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The database goes away: open connections are closed now, new ones as soon as accepted.
    pub fn cut(&self) {
        self.shared.cut.store(true, SeqCst);
        self.shared.close_all();
    }

    /// The database comes back: new connections are forwarded again.
    pub fn restore(&self) {
        self.shared.cut.store(false, SeqCst);
    }

    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(SeqCst)
    }

    /// Connections accepted so far (forwarded or refused).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(SeqCst)
    }

    /// Connections forwarded to the upstream so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(SeqCst)
    }

    /// Connections closed on accept because the proxy was cut (or the upstream refused).
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(SeqCst)
    }

    /// Forwarded connections still open.
    pub fn open_connections(&self) -> usize {
        self.shared.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        self.shared.close_all();
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    while !shared.stop.load(SeqCst) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                eprintln!("proxy: accept: {e}");
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        shared.accepted.fetch_add(1, SeqCst);
        if shared.cut.load(SeqCst) {
            shared.refused.fetch_add(1, SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let _ = client.set_nonblocking(false);
        let server = match TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("proxy: connect {upstream}: {e}");
                shared.refused.fetch_add(1, SeqCst);
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let id = next_id;
        next_id += 1;
        let clones = (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone());
        let (Ok(c_reg), Ok(s_reg), Ok(c_read), Ok(s_read)) = clones else {
            eprintln!("proxy: cannot clone sockets; dropping the connection");
            continue;
        };
        {
            let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
            // A cut between the check above and here must not miss this connection.
            if shared.cut.load(SeqCst) || shared.stop.load(SeqCst) {
                shared.refused.fetch_add(1, SeqCst);
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                continue;
            }
            open.push((id, c_reg, s_reg));
        }
        shared.forwarded.fetch_add(1, SeqCst);
        let s1 = shared.clone();
        let s2 = shared.clone();
        std::thread::spawn(move || pump(c_read, server, id, &s1));
        std::thread::spawn(move || pump(s_read, client, id, &s2));
    }
}

/// Copies `from` to `to` until either side closes, then closes both, so that the pump running
/// the other way ends as well (a connection is all or nothing, like a real server going away).
fn pump(mut from: TcpStream, mut to: TcpStream, id: u64, shared: &Shared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    shared.forget(id);
}
