//! Child processes: started with their output in a log file, signalled by
//! name, and stopped (SIGTERM, then SIGKILL after a grace period) on drop.

use crate::LocalError;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process, terminated on drop.
pub struct Proc {
    /// Name for messages.
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    /// Spawns `bin args...` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, bin: &Path, args: &[String], envs: &[(String, String)], log: &Path) -> Result<Proc, LocalError> {
        let io = |what: String| move |e| LocalError::Io(what, e);
        let f = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(io(format!("opening {}", log.display())))?;
        let child = Command::new(bin)
            .args(args)
            .envs(envs.iter().cloned())
            .stdin(Stdio::null())
            .stdout(f.try_clone().map_err(io(format!("opening {}", log.display())))?)
            .stderr(f)
            .spawn()
            .map_err(io(format!("starting {name} ({})", bin.display())))?;
        Ok(Proc { name: name.to_string(), child: Some(child) })
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Waits up to `timeout` for it to exit by itself; its exit status, or
    /// `None` if it is still running (or was already reaped).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal by name (`TERM`, `KILL`, `STOP`, `CONT`).
    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for exit.
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            stop_child(&mut child, "TERM", &pid, grace);
        }
    }

    /// SIGKILL now, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(5));
    }
}

/// Sends `signal` to `pid`, waits up to `grace` for `child` to exit, then kills
/// and reaps it.
pub fn stop_child(child: &mut Child, signal: &str, pid: &str, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
