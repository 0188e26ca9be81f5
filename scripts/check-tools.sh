#!/usr/bin/env bash
# Checks, before anything is fetched or built, that the machine has the system
# tools `just test` needs besides a Rust toolchain; PostgreSQL, ONNX Runtime and
# the Python packages are fetched. Prints one message naming every missing tool
# and the command that installs them all, and exits 1; silent when all are here.
# Usage: scripts/check-tools.sh
set -uo pipefail

missing=() # "tool (what it is for)"
apt=() dnf=()
need() { # need <tool> <apt package> <dnf package> <what for>
  missing+=("$1 ($4)")
  apt+=("$2")
  dnf+=("$3")
}

command -v python3 >/dev/null 2>&1 || need python3 python3 python3 "fetches runtimes and models; the cross-check test"
if command -v python3 >/dev/null 2>&1; then
  python3 -m pip --version >/dev/null 2>&1 || need "pip" python3-pip python3-pip "fetches PyPI packages"
  python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need "python3 venv" python3-venv python3 "the test Python environment"
fi
if [ -z "${JAGGED_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  need chromium chromium chromium "renders report.html in the end-to-end test; or set JAGGED_CHROMIUM"
fi
command -v openssl >/dev/null 2>&1 || need openssl openssl openssl "makes the TLS test's certificates"
command -v script >/dev/null 2>&1 || need script bsdutils util-linux-script "runs --watch in a pseudo-terminal"
command -v kubectl >/dev/null 2>&1 || need kubectl kubernetes-client kubernetes-client "renders the Kubernetes manifests (kubectl kustomize)"
command -v prometheus >/dev/null 2>&1 || need prometheus prometheus golang-github-prometheus-prometheus "scrapes a sweep in the metrics test"
command -v promtool >/dev/null 2>&1 || need promtool prometheus golang-github-prometheus-prometheus "checks and unit-tests the alert rules"
if [ "$(id -u)" = 0 ]; then
  command -v runuser >/dev/null 2>&1 || need runuser util-linux util-linux "runs PostgreSQL as a user other than root"
  command -v chattr >/dev/null 2>&1 || need chattr e2fsprogs e2fsprogs "makes a store folder unwritable to root in a failure test"
  # A private single-node Slurm runs the deploy/slurm scripts (root only: slurmd starts jobs as their users).
  command -v munged >/dev/null 2>&1 || need munged munge munge "authenticates the test's Slurm daemons"
  command -v slurmctld >/dev/null 2>&1 || need slurmctld slurmctld slurm "the Slurm test's controller"
  command -v slurmd >/dev/null 2>&1 || need slurmd slurmd slurm-slurmd "the Slurm test's node daemon"
  command -v sbatch >/dev/null 2>&1 || need sbatch slurm-client slurm "submits the Slurm test's jobs"
  # The container image, assembled offline and run (root only here).
  command -v buildah >/dev/null 2>&1 || need buildah buildah buildah "assembles the container image offline"
  command -v podman >/dev/null 2>&1 || need podman podman podman "runs the image's coordinator and workers"
  command -v runc >/dev/null 2>&1 || need runc runc runc "the container runtime podman uses here"
  command -v objcopy >/dev/null 2>&1 || need objcopy binutils binutils "strips debug info from the binary in the image"
fi

[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo "
{
  echo "just test needs tools this machine lacks:"
  printf '  - %s\n' "${missing[@]}"
  if command -v apt-get >/dev/null 2>&1; then
    echo "install them with: ${sudo}apt-get install -y $(printf '%s\n' "${apt[@]}" | sort -u | tr '\n' ' ')"
  elif command -v dnf >/dev/null 2>&1; then
    echo "install them with: ${sudo}dnf install -y $(printf '%s\n' "${dnf[@]}" | sort -u | tr '\n' ' ')"
  else
    echo "install them with your package manager (Debian names: $(printf '%s\n' "${apt[@]}" | sort -u | tr '\n' ' '))"
  fi
} >&2
exit 1
