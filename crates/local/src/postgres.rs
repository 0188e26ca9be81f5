//! A private PostgreSQL cluster for the demo and the tests: `initdb` in a
//! temporary folder, a random loopback port, the socket in that folder, and
//! durability off (fsync, synchronous commit) since it is thrown away.
//!
//! Server binaries are found in `JAGGED_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `pg_config --bindir` (`just` points
//! `JAGGED_PG_BIN` at binaries it fetches when the machine has none:
//! `scripts/fetch.sh postgres`). PostgreSQL refuses to run as root, so as root
//! the cluster runs through `runuser` as the `postgres` user, or `nobody` where
//! there is none.
//!
//! `JAGGED_PG_SETTINGS` adds server settings, space-separated `name=value`
//! pairs (`shared_preload_libraries=pg_stat_statements work_mem=64MB`).

use crate::process::stop_child;
use crate::LocalError;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private cluster; stopped and deleted on drop.
pub struct LocalPostgres {
    dir: PathBuf,
    keep: bool,
    port: u16,
    bin: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

/// What the environment says about the private cluster, read here and nowhere
/// else in this crate: `JAGGED_PG_BIN` and `JAGGED_PG_SETTINGS`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PgSettings {
    /// The folder holding `initdb` and `postgres`; `None` searches the usual places.
    pub bin: Option<PathBuf>,
    /// Extra server settings, one `name=value` per item.
    pub extra: Vec<String>,
}

impl PgSettings {
    /// Reads `JAGGED_PG_BIN` and `JAGGED_PG_SETTINGS`.
    pub fn from_env() -> PgSettings {
        PgSettings {
            bin: std::env::var_os("JAGGED_PG_BIN").map(PathBuf::from),
            extra: std::env::var("JAGGED_PG_SETTINGS").unwrap_or_default().split_whitespace().map(str::to_string).collect(),
        }
    }
}

fn find_bin(given: Option<&Path>) -> Result<PathBuf, LocalError> {
    if let Some(p) = given {
        let p = p.to_path_buf();
        if !p.join("initdb").exists() {
            return Err(LocalError::Postgres(format!(
                "JAGGED_PG_BIN={} holds no initdb: point it at PostgreSQL's bin folder (`scripts/fetch.sh postgres` fetches one there)",
                p.display()
            )));
        }
        return Ok(p);
    }
    let mut candidates: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect()).unwrap_or_default();
    candidates.sort_by_key(|p| p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()));
    if let Some(p) = candidates.into_iter().rev().find(|p| p.join("initdb").exists()) {
        return Ok(p);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return Ok(p);
        }
    }
    Err(LocalError::Postgres(
        "PostgreSQL server binaries not found: `just demo` and `just test` fetch them; else install the PostgreSQL server package, or set JAGGED_PG_BIN to a bin folder (`scripts/fetch.sh postgres` fetches one)"
            .into(),
    ))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// The user the cluster runs as when we are root: `postgres`, else `nobody`.
fn server_user() -> &'static str {
    let has_postgres = Command::new("id").args(["-u", "postgres"]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if has_postgres {
        "postgres"
    } else {
        "nobody"
    }
}

/// Gives `path` (recursively with `-R`) to the server's user when we are root.
fn give(path: &Path, recursive: bool) -> Result<(), LocalError> {
    if !is_root() {
        return Ok(());
    }
    let mut c = Command::new("chown");
    if recursive {
        c.arg("-R");
    }
    let st = c.arg(format!("{}:", server_user())).arg(path).status().map_err(|e| LocalError::Postgres(format!("running chown: {e}")))?;
    if !st.success() {
        return Err(LocalError::Postgres(format!("chown of {} to {} failed", path.display(), server_user())));
    }
    Ok(())
}

fn as_owner(bin: &Path, prog: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", server_user(), "--"]).arg(bin.join(prog));
        c
    } else {
        Command::new(bin.join(prog))
    }
}

fn free_port() -> Result<u16, LocalError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| LocalError::Postgres(format!("no free port: {e}")))?;
    Ok(l.local_addr().map_err(|e| LocalError::Postgres(e.to_string()))?.port())
}

impl LocalPostgres {
    /// Initialises and starts a cluster in a new temporary folder.
    pub fn start() -> Result<LocalPostgres, LocalError> {
        Self::start_using(&PgSettings::from_env())
    }

    /// [`LocalPostgres::start`] with the settings given.
    pub fn start_using(settings: &PgSettings) -> Result<LocalPostgres, LocalError> {
        let dir = std::env::temp_dir().join(format!("jagged-pg-{}-{}", std::process::id(), rand_suffix()));
        Self::start_with(&dir, false, settings)
    }

    /// Initialises (if needed) and starts a cluster in `dir`; `keep` leaves the
    /// folder in place on drop. Settings come from [`PgSettings::from_env`].
    pub fn start_in(dir: &Path, keep: bool) -> Result<LocalPostgres, LocalError> {
        Self::start_with(dir, keep, &PgSettings::from_env())
    }

    /// [`LocalPostgres::start_in`] with the settings given.
    pub fn start_with(dir: &Path, keep: bool, settings: &PgSettings) -> Result<LocalPostgres, LocalError> {
        let bin = find_bin(settings.bin.as_deref())?;
        std::fs::create_dir_all(dir).map_err(|e| LocalError::Postgres(format!("{}: {e}", dir.display())))?;
        let data = dir.join("data");
        give(dir, true)?;
        if !data.join("PG_VERSION").exists() {
            let out = as_owner(&bin, "initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "jagged", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"])
                .output()
                .map_err(|e| LocalError::Postgres(format!("running initdb: {e}")))?;
            if !out.status.success() {
                return Err(LocalError::Postgres(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr))));
            }
        }
        let mut pg = LocalPostgres { dir: dir.to_path_buf(), keep, port: free_port()?, bin, extra: settings.extra.clone(), child: None };
        // Another process may take the free port before the server binds it: retry.
        let mut tries = 0;
        loop {
            match pg.restart() {
                Ok(()) => return Ok(pg),
                Err(e) if tries < 3 => {
                    tracing::warn!(error = %e, "postgres did not start; retrying on another port");
                    tries += 1;
                    pg.port = free_port()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// (Re)starts the server on the same port and waits until it accepts connections.
    pub fn restart(&mut self) -> Result<(), LocalError> {
        self.stop();
        let log = std::fs::File::create(self.dir.join("server.log")).map_err(|e| LocalError::Postgres(e.to_string()))?;
        give(&self.dir.join("server.log"), false)?;
        let child = as_owner(&self.bin, "postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300", "-c", "shared_buffers=128MB"])
            .args(self.extra.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| LocalError::Postgres(e.to_string()))?)
            .stderr(log)
            .spawn()
            .map_err(|e| LocalError::Postgres(format!("starting postgres: {e}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "jagged", "-d", "postgres"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                    return Err(LocalError::Postgres(format!("postgres exited ({st}): {log}")));
                }
            }
            if Instant::now() > deadline {
                return Err(LocalError::Postgres("postgres did not accept connections within 30 s".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown), if running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok().and_then(|s| s.lines().next().map(|l| l.trim().to_string()));
        // As root the child is `runuser`: signal the postmaster itself.
        let pid = pid.unwrap_or_else(|| child.id().to_string());
        stop_child(&mut child, "INT", &pid, Duration::from_secs(10));
    }

    /// The connection URL.
    pub fn url(&self) -> String {
        format!("postgres://jagged@127.0.0.1:{}/postgres", self.port)
    }

    /// The cluster's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn rand_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}-{n}", t.as_nanos() & 0xffff_ffff)
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        self.stop();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
