//! A TCP proxy that can turn chosen connections into a black hole: bytes stop flowing both
//! ways and nothing is closed, as when a NAT or firewall forgets a connection. A connection
//! is chosen by bytes its client sent (e.g. a PostgreSQL application_name).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub struct Blackhole {
    pub port: u16,
    /// Connections accepted so far (each numbered in order)...
    accepted: Arc<AtomicUsize>,
    /// ... and how many of the first ones are frozen (0: none).
    frozen_below: Arc<AtomicUsize>,
}

/// One connection's client-sent bytes so far (capped), to match against.
type Seen = Arc<Mutex<Vec<u8>>>;

impl Blackhole {
    /// Forwards 127.0.0.1:port → `upstream`; connections whose client has sent `marker`
    /// freeze when [`Blackhole::freeze`] is called (later ones flow: a reconnect works).
    pub fn start(upstream: String, marker: &'static [u8]) -> Blackhole {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (accepted, frozen_below) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (count, below) = (accepted.clone(), frozen_below.clone());
        thread::spawn(move || {
            for client in l.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let seen: Seen = Arc::default();
                let stop = {
                    let (seen, below) = (seen.clone(), below.clone());
                    move || n < below.load(Ordering::SeqCst) && contains(&seen.lock().unwrap(), marker)
                };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    Some(seen),
                    stop.clone(),
                );
                pipe(server, client, None, stop);
            }
        });
        Blackhole {
            port,
            accepted,
            frozen_below,
        }
    }

    /// Freezes the marked connections open now.
    pub fn freeze(&self) {
        self.frozen_below
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Copies `from` → `to` until either closes; while `stop()` holds, holds the bytes back.
fn pipe(mut from: TcpStream, mut to: TcpStream, seen: Option<Seen>, stop: impl Fn() -> bool + Send + 'static) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(s) = &seen {
                let mut s = s.lock().unwrap();
                if s.len() < 64 * 1024 {
                    s.extend_from_slice(&buf[..n]);
                }
            }
            // Frozen: the bytes go nowhere and the connection stays open.
            while stop() {
                thread::sleep(Duration::from_millis(100));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
