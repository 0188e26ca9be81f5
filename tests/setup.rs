//! Setting up a machine: `just test` names every system tool it lacks with the
//! command that installs them, and a PostgreSQL that is not where it is said to
//! be is named with how to get one.

use jagged_testkit::{jagged_bin, ort, root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `tool` is on this machine's PATH (the interpreter itself for python3,
/// whose PATH entry may be a shim).
fn which(tool: &str) -> PathBuf {
    if tool == "python3" {
        let out = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
        return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    }
    let out = Command::new("bash").args(["-c", &format!("command -v {tool}")]).output().unwrap();
    assert!(out.status.success(), "{tool} is not on this machine's PATH");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Runs scripts/check-tools.sh with a PATH holding only `tools` (and
/// `chromium`, a stand-in found but never run, when `browser`); returns
/// (exit code, stderr).
fn check_with(dir: &Path, tools: &[&str], browser: bool) -> (i32, String) {
    let bin = dir.join("bin");
    let _ = std::fs::remove_dir_all(&bin);
    std::fs::create_dir_all(&bin).unwrap();
    for t in tools {
        std::os::unix::fs::symlink(which(t), bin.join(t)).unwrap();
    }
    if browser {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(bin.join("chromium"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bin.join("chromium"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out =
        Command::new(which("bash")).arg(root().join("scripts/check-tools.sh")).env("PATH", &bin).env_remove("JAGGED_CHROMIUM").output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_tool_check_names_exactly_what_is_missing_and_how_to_install_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root_user = String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0";
    let mut tools = vec!["bash", "id", "sort", "tr", "python3", "script", "kubectl", "prometheus", "promtool"];
    if root_user {
        tools.extend(["runuser", "chattr", "munged", "slurmctld", "slurmd", "sbatch", "buildah", "podman", "runc", "objcopy"]);
    }
    let apt = Path::new("/usr/bin/apt-get").exists();
    if apt {
        tools.push("apt-get");
    }

    let (rc, text) = check_with(tmp.path(), &tools, false);
    assert_eq!(rc, 1, "{text}");
    let listed: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("  - ")).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(listed, ["chromium", "openssl"], "{text}");
    let install = text.lines().find(|l| l.starts_with("install them with")).unwrap_or_else(|| panic!("no install command: {text}"));
    if apt {
        let sudo = if root_user { "" } else { "sudo " };
        assert_eq!(install, format!("install them with: {sudo}apt-get install -y chromium openssl "));
    }

    tools.push("openssl");
    let (rc, text) = check_with(tmp.path(), &tools, false);
    assert_eq!(rc, 1, "{text}");
    assert!(text.contains("  - chromium (") && !text.contains("openssl"), "{text}");

    // All found: nothing is said.
    assert_eq!(check_with(tmp.path(), &tools, true), (0, String::new()));
}

#[test]
fn a_postgres_folder_without_binaries_is_named_with_how_to_fetch_one() {
    ort();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(jagged_bin())
        .args(["demo", "--out"])
        .arg(tmp.path().join("out"))
        .env("JAGGED_PG_BIN", tmp.path().join("nowhere"))
        .env("NO_COLOR", "1")
        .current_dir(root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    let want = format!("JAGGED_PG_BIN={} holds no initdb", tmp.path().join("nowhere").display());
    assert!(text.contains(&want) && text.contains("scripts/fetch.sh postgres"), "{text}");
}
