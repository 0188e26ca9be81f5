//! The repository's own Slurm scripts on a real single-node Slurm (slurmctld,
//! slurmd and munge, private to the test, with four stand-in GPUs so the
//! scripts' `--gres=gpu:1` is honoured as written): a coordinator job, a worker
//! job array pulling shards, one array task cancelled mid-sweep (preemption),
//! and the report byte-identical to an undisturbed run; the arrays end by
//! themselves once the work is done.

use jagged_client::Overrides;
use jagged_domain::status::SweepState;
use jagged_testkit::{jagged_bin, root, until};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(out.status.success(), "{c:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the worker named `name` holds a shard of sweep `sweep`.
async fn until_held(pg: &str, sweep: i64, name: &str) {
    let db = crate::util::db(pg).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let held: i64 = sqlx::query_scalar(
            "select count(*) from shards s join workers w on w.id = s.worker_id where s.sweep_id = $1 and s.state = 'leased' and w.name = $2",
        )
        .bind(sweep)
        .bind(name)
        .fetch_one(&db)
        .await
        .unwrap();
        if held > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never held a shard");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The summary CSV of sweep `id`, once it is done with every shard committed once.
async fn committed_once(pg: &str, url: &str, objects: &dyn object_store::ObjectStore, id: i64) -> String {
    let s = jagged_store::Store::connect(pg, 1).await.unwrap();
    let outputs = s.outputs(id).await.unwrap();
    let st = until(url, id, "status", |_| true).await;
    assert_eq!((st.state, st.done, st.failed, outputs.len() as u32), (SweepState::Done, st.total, 0, st.total), "every shard committed once: {st:?}");
    jagged_report::build(&s, objects, id).await.unwrap().csv()
}

/// A private single-node Slurm: its own munge socket and key, ports, state
/// and spool folders; stopped on drop.
struct Slurm {
    dir: PathBuf,
}

impl Slurm {
    fn start(dir: &Path) -> Slurm {
        let root_user = String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0";
        assert!(root_user, "the Slurm test runs slurmd, which starts jobs as their users: run it as root (CI does)");
        for tool in ["munged", "slurmctld", "slurmd", "sbatch"] {
            assert!(
                Command::new("bash").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().unwrap().success(),
                "{tool} not found: apt-get install munge slurmctld slurmd slurm-client"
            );
        }
        let dir = dir.join("slurm");
        for d in ["state", "spool", "log"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let key: Vec<u8> = (0..1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ std::process::id() as u8).collect();
        std::fs::write(dir.join("munge.key"), key).unwrap();
        std::fs::set_permissions(dir.join("munge.key"), std::fs::Permissions::from_mode(0o400)).unwrap();
        let p = |f: &str| dir.join(f).display().to_string();
        run(Command::new("munged").args([
            "--force",
            &format!("--socket={}", p("munge.sock")),
            &format!("--key-file={}", p("munge.key")),
            &format!("--pid-file={}", p("munged.pid")),
            &format!("--seed-file={}", p("munge.seed")),
            &format!("--log-file={}", p("munged.log")),
        ]));
        // Four stand-in GPUs: character devices like /dev/null.
        for i in 0..4 {
            run(Command::new("mknod").args(["-m", "666", &p(&format!("gpu{i}")), "c", "1", "3"]));
        }
        let host = run(Command::new("hostname").arg("-s")).trim().to_string();
        let conf = format!(
            "ClusterName=jagged\nSlurmctldHost={host}(127.0.0.1)\nSlurmctldPort={}\nSlurmdPort={}\n\
             AuthType=auth/munge\nAuthInfo=socket={}\nCredType=cred/munge\nSlurmUser=root\nSlurmdUser=root\n\
             StateSaveLocation={}\nSlurmdSpoolDir={}\nSlurmctldPidFile={}\nSlurmdPidFile={}\n\
             SlurmctldLogFile={}\nSlurmdLogFile={}\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\nMpiDefault=none\n\
             SchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
             SchedulerParameters=sched_interval=1\nReturnToService=2\nKillWait=10\nMinJobAge=600\n\
             SlurmdParameters=config_overrides\nGresTypes=gpu\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs=16 RealMemory=64000 Gres=gpu:4 State=UNKNOWN\n\
             PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4\n",
            free_port(),
            free_port(),
            p("munge.sock"),
            p("state"),
            p("spool"),
            p("slurmctld.pid"),
            p("slurmd.pid"),
            p("log/slurmctld.log"),
            p("log/slurmd.log"),
        );
        std::fs::write(dir.join("slurm.conf"), conf).unwrap();
        std::fs::write(dir.join("gres.conf"), format!("AutoDetect=off\nNodeName={host} Name=gpu File={}\n", p("gpu[0-3]"))).unwrap();
        let slurm = Slurm { dir: dir.clone() };
        run(slurm.cmd("slurmctld").args(["-f", &p("slurm.conf")]));
        run(slurm.cmd("slurmd").args(["-f", &p("slurm.conf")]));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = run(slurm.cmd("sinfo").args(["-h", "-o", "%T"]));
            if state.trim() == "idle" {
                break;
            }
            assert!(Instant::now() < deadline, "the Slurm node never became idle ({state}):\n{}", slurm.log("slurmctld"));
            std::thread::sleep(Duration::from_millis(200));
        }
        slurm
    }

    /// A Slurm command (`sbatch`, `squeue`, ...) talking to this cluster.
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("SLURM_CONF", self.dir.join("slurm.conf"));
        c
    }

    fn log(&self, daemon: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("log/{daemon}.log"))).unwrap_or_default()
    }

    /// Whether the job (or any task of the array) is still pending or running.
    fn active(&self, job: &str) -> bool {
        !run(self.cmd("squeue").args(["-h", "-j", job, "-o", "%i"])).trim().is_empty()
    }

    /// `task -> state` of an array job, e.g. `0 -> COMPLETED`.
    fn states(&self, job: &str) -> Vec<(String, String)> {
        let text = run(self.cmd("scontrol").args(["show", "job", "-o", job]));
        let field = |line: &str, name: &str| line.split(' ').find_map(|f| f.strip_prefix(name)).unwrap_or("").to_string();
        let mut out: Vec<(String, String)> = text.lines().map(|l| (field(l, "ArrayTaskId="), field(l, "JobState="))).collect();
        out.sort();
        out
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let _ = self.cmd("scancel").args(["--full", "-u", "root"]).status();
        let mut pids = Vec::new();
        for pid in ["slurmd.pid", "slurmctld.pid", "munged.pid"] {
            if let Ok(p) = std::fs::read_to_string(self.dir.join(pid)) {
                let _ = Command::new("kill").arg(p.trim()).status();
                pids.push(p.trim().to_string());
            }
        }
        // Gone before the next test starts its own daemons.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|p| std::path::Path::new(&format!("/proc/{p}")).exists()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn the_sbatch_scripts_run_a_sweep_and_survive_a_preempted_array_task() {
    let w = jagged_testkit::Workload::new("slurm", 48, 16, 2, 32);
    let (dir, pg, store) = (w.dir(), &w.pg, &w.store);
    let shared = dir.join("shared");
    let slurm = Slurm::start(dir);
    let scripts = root().join("deploy/slurm");
    let sbatch = |args: &[&str], env: &[(&str, String)]| -> String {
        let mut c = slurm.cmd("sbatch");
        c.arg("--parsable").args(args).current_dir(dir);
        c.env("JAGGED_BIN", jagged_bin()).env("JAGGED_SHARED", &shared).env("NO_COLOR", "1");
        for (k, v) in env {
            c.env(k, v);
        }
        run(&mut c).trim().split(';').next().unwrap().to_string()
    };

    // The coordinator job, on loopback here; it tells workers its URL.
    let coordinator = sbatch(
        &[scripts.join("coordinator.sbatch").to_str().unwrap()],
        &[("DATABASE_URL", pg.url()), ("JAGGED_LISTEN", "127.0.0.1:0".into()), ("JAGGED_ADVERTISE", "127.0.0.1".into())],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !shared.join("coordinator.url").exists() {
        let log = std::fs::read_to_string(dir.join(format!("jagged-coordinator-{coordinator}.log"))).unwrap_or_default();
        assert!(Instant::now() < deadline && slurm.active(&coordinator), "the coordinator job did not come up:\n{log}\n{}", slurm.log("slurmctld"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = std::fs::read_to_string(shared.join("coordinator.url")).unwrap().trim().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = jagged_artifacts::open_store(store.to_str().unwrap()).unwrap();
    let again = Overrides { again: true, ..Default::default() };
    let submit = || rt.block_on(jagged_testkit::submit(&url, &dir.join("spec.toml"), objects.as_ref(), &again)).unwrap();
    let workers = |n: &str| {
        let env = [
            ("JAGGED_STORE", store.display().to_string()),
            ("JAGGED_DEVICE", "cpu".into()),
            ("JAGGED_THREADS", "1".into()),
            ("JAGGED_EXIT_WHEN_IDLE", "3s".into()),
        ];
        sbatch(&[&format!("--array=0-{n}"), scripts.join("worker.sbatch").to_str().unwrap()], &env)
    };
    let ended = |job: &str| {
        let deadline = Instant::now() + Duration::from_secs(180);
        while slurm.active(job) {
            assert!(Instant::now() < deadline, "array {job} did not end by itself: {:?}", slurm.states(job));
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let report = |id| rt.block_on(committed_once(&pg.url(), &url, objects.as_ref(), id));

    // Undisturbed: three array tasks run the sweep and end by themselves.
    let a = submit();
    let array = workers("2");
    ended(&array);
    let states = slurm.states(&array);
    eprintln!("undisturbed array {array}: {states:?}");
    assert!(states.iter().all(|(_, s)| s == "COMPLETED"), "{states:?}");
    let reference = report(a);

    // One array task cancelled (preempted) while it holds a shard.
    let b = submit();
    let array = workers("2");
    let victim = format!("slurm-{array}_1-r0");
    rt.block_on(until_held(&pg.url(), b, &victim));
    let mid = rt.block_on(until(&url, b, "status", |_| true));
    assert_eq!(mid.state, SweepState::Running, "the sweep ended before the preemption: make it longer");
    run(slurm.cmd("scancel").arg(format!("{array}_1")));
    ended(&array);
    let states = slurm.states(&array);
    eprintln!("array {array} with task 1 cancelled mid-sweep (it held a shard; {}/{} shards were done): {states:?}", mid.done, mid.total);
    assert_eq!(states.iter().find(|(t, _)| t == "1").map(|(_, s)| s.as_str()), Some("CANCELLED"), "{states:?}");
    assert!(states.iter().filter(|(t, _)| t != "1").all(|(_, s)| s == "COMPLETED"), "{states:?}");
    let log = std::fs::read_to_string(dir.join(format!("jagged-worker-{array}_1.log"))).unwrap_or_default();
    eprintln!("the cancelled task's log ends:\n{}", log.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));
    assert!(log.contains("told to stop"), "{log}");
    let csv = report(b);
    assert!(csv == reference, "the report after a preempted array task differs:\n{csv}\nvs\n{reference}");
    eprintln!("report after the preemption: byte-identical to the undisturbed run's ({} bytes)", csv.len());
    run(slurm.cmd("scancel").arg(&coordinator));
}
