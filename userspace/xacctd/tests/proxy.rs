//! The outage proxy itself: bytes both ways, `cut` closing open connections and refusing new
//! ones, `restore`, and Drop; first against a local echo server, then in front of the real
//! PostgreSQL with the `postgres` client, cut while a session is open.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use support::proxy::Proxy;

/// An echo server on a free port; serves until the test process ends.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn echo(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg)?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got)?;
    Ok(got)
}

/// Reading from a connection the proxy closed ends (EOF or reset) instead of hanging.
fn assert_closed(s: &mut TcpStream) {
    let _ = s.write_all(b"anyone?");
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("connection still forwarding: read {n} bytes"),
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn forwards_both_ways_cuts_and_restores() {
    let p = Proxy::start(echo_server());
    let mut a = connect(p.addr());
    let mut b = connect(p.addr());
    assert_eq!(echo(&mut a, b"hello").unwrap(), b"hello");
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    assert_eq!(echo(&mut b, &big).unwrap(), big);
    wait_until("two open connections", || p.open_connections() == 2);

    p.cut();
    assert!(p.is_cut());
    assert_closed(&mut a);
    assert_closed(&mut b);
    assert_eq!(p.open_connections(), 0);
    // New connections are accepted by the kernel, then closed at once.
    let mut c = connect(p.addr());
    assert_closed(&mut c);
    wait_until("the refusal to be counted", || p.refused() >= 1);

    p.restore();
    let mut d = connect(p.addr());
    assert_eq!(echo(&mut d, b"back").unwrap(), b"back");
    assert_eq!(p.forwarded(), 3);
    drop(d);
    wait_until("the closed connection to be forgotten", || p.open_connections() == 0);

    let addr = p.addr();
    let mut e = connect(addr);
    assert_eq!(echo(&mut e, b"x").unwrap(), b"x");
    drop(p);
    assert_closed(&mut e);
    assert!(TcpStream::connect(addr).is_err(), "nothing listens after Drop");
}

#[test]
fn an_unreachable_upstream_closes_the_client() {
    // A port nothing listens on (bound, then released).
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let p = Proxy::start(dead);
    let mut a = connect(p.addr());
    assert_closed(&mut a);
    wait_until("the refusal to be counted", || p.refused() == 1);
    assert_eq!(p.forwarded(), 0);
}

const PG: &str = "127.0.0.1:5432";

fn pg_client(port: u16) -> Result<postgres::Client, postgres::Error> {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("test")
        .connect_timeout(Duration::from_secs(5))
        .connect(postgres::NoTls)
}

#[test]
fn postgres_through_the_proxy_survives_a_cut_by_reconnecting() {
    if TcpStream::connect(PG).is_err() {
        support::skip("no PostgreSQL on 127.0.0.1:5432");
        return;
    }
    let p = Proxy::start(PG.parse().unwrap());
    let mut db = pg_client(p.port()).expect("connect through the proxy");
    let one: i32 = db.query_one("SELECT 1 + 0", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    db.batch_execute("CREATE TEMP TABLE proxy_t (n INT); INSERT INTO proxy_t VALUES (1), (2), (3)").unwrap();
    let sum: i64 = db.query_one("SELECT sum(n) FROM proxy_t", &[]).unwrap().get(0);
    assert_eq!(sum, 6);

    // Cut while the session is open and idle: its next statement fails, and the client knows
    // the connection is gone.
    p.cut();
    let err = db.query_one("SELECT 2", &[]).expect_err("a query through a cut proxy must fail");
    assert!(db.is_closed(), "client still thinks it is connected after: {err}");
    // Reconnecting fails while cut (quickly: the proxy closes, it does not black-hole).
    let t = Instant::now();
    assert!(pg_client(p.port()).is_err());
    assert!(t.elapsed() < Duration::from_secs(5), "connect took {:?}", t.elapsed());

    p.restore();
    let mut db = pg_client(p.port()).expect("reconnect after restore");
    let two: i32 = db.query_one("SELECT 2", &[]).unwrap().get(0);
    assert_eq!(two, 2);
    // The temp table died with the first session: this is a new backend, as after an outage.
    assert!(db.query_one("SELECT sum(n) FROM proxy_t", &[]).is_err());
    assert_eq!(p.forwarded(), 2);
}

#[test]
fn postgres_cut_in_the_middle_of_a_long_query() {
    if TcpStream::connect(PG).is_err() {
        support::skip("no PostgreSQL on 127.0.0.1:5432");
        return;
    }
    let p = Proxy::start(PG.parse().unwrap());
    let mut db = pg_client(p.port()).expect("connect through the proxy");
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = started.clone();
    let q = std::thread::spawn(move || {
        s.store(true, std::sync::atomic::Ordering::SeqCst);
        // Long enough that the cut lands while the server is still working on it.
        db.query_one("SELECT pg_sleep(5)::text", &[]).map(|_| ())
    });
    wait_until("the query to start", || started.load(std::sync::atomic::Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(300));
    p.cut();
    let res = q.join().unwrap();
    assert!(res.is_err(), "the query must fail when the connection is cut");
}
