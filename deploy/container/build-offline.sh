#!/usr/bin/env bash
# Assembles jagged's CPU image offline with buildah, from a built binary and
# the shared libraries it and ONNX Runtime load (no base image is pulled): the
# binary (debug info stripped), ONNX Runtime, those libraries, a non-root user,
# /tmp, and the CA certificates for https stores. The Containerfile beside this
# script builds the same layout from base images where they can be pulled.
#
# Usage: deploy/container/build-offline.sh [--binary PATH] [--ort PATH] [--tag NAME]
#   defaults: target/release/jagged, .cache/jagged/ort/libonnxruntime.so, jagged:cpu
# Needs buildah (as root, or rootless with subuids); prints the image id.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
binary="$root/target/release/jagged"
ort="$root/.cache/jagged/ort/libonnxruntime.so"
tag="jagged:cpu"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --ort) ort=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    *) echo "unknown argument: $1 (--binary PATH, --ort PATH, --tag NAME)" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "no jagged binary at $binary (cargo build --release -p jagged-cli)" >&2; exit 1; }
[ -f "$ort" ] || { echo "no ONNX Runtime at $ort (scripts/fetch.sh ort)" >&2; exit 1; }
command -v buildah >/dev/null || { echo "buildah not found (apt-get install buildah)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/usr/local/bin" "$work/rootfs/opt/onnxruntime" "$work/rootfs/etc/ssl/certs" "$work/rootfs/tmp"
objcopy --strip-debug "$binary" "$work/rootfs/usr/local/bin/jagged"
ort_real=$(readlink -f "$ort")
cp "$ort_real" "$work/rootfs/opt/onnxruntime/"
ln -s "$(basename "$ort_real")" "$work/rootfs/opt/onnxruntime/libonnxruntime.so"
# Every library the binary and ONNX Runtime link against, at the same path,
# and the dynamic loader.
for lib in $( (ldd "$binary"; ldd "$ort_real") | awk '/=>/ { print $3 } /^[ \t]*\/lib/ { print $1 }' | sort -u); do
  mkdir -p "$work/rootfs$(dirname "$lib")"
  cp -L "$lib" "$work/rootfs$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\njagged:x:10001:10001:jagged:/tmp:/sbin/nologin\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\njagged:x:10001:\n' > "$work/rootfs/etc/group"
printf 'hosts: files dns\n' > "$work/rootfs/etc/nsswitch.conf"
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/"
chmod 1777 "$work/rootfs/tmp"

ctr=$(buildah from scratch)
buildah copy --quiet "$ctr" "$work/rootfs/" / >/dev/null
buildah config \
  --env PATH=/usr/local/bin \
  --env ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so \
  --env JAGGED_STORE=/data/store \
  --user 10001:10001 \
  --workingdir /tmp \
  --entrypoint '["/usr/local/bin/jagged"]' \
  --cmd '["--help"]' \
  --label org.opencontainers.image.title=jagged \
  --label org.opencontainers.image.description="jagged (CPU): coordinator, worker and client in one binary" \
  "$ctr"
buildah commit --quiet --rm "$ctr" "$tag"
