//! Helpers more than one area uses.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process's pipe, read on a thread as the child writes, so a test
/// can wait for what it prints instead of sleeping.
pub struct Captured {
    text: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Captured {
    /// Starts reading `pipe` (a child's stdout or stderr).
    pub fn new(mut pipe: impl Read + Send + 'static) -> Captured {
        let text = Arc::new(Mutex::new(Vec::new()));
        let into = text.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Captured { text, reader: Some(reader) }
    }

    /// What was read so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    /// Waits until what was read satisfies `ready`, failing the test with
    /// `what` and the text after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text();
            if ready(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "waited {timeout:?} for {what}; got:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything, once the pipe has closed (the child exited).
    pub fn finish(mut self) -> String {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.text()
    }
}

/// A connection pool of the test's own, for reading (or damaging) the
/// database as an outsider would; the product's SQL stays in `jagged-store`.
pub async fn db(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(url).await.expect("connecting to the test's PostgreSQL")
}
