# jagged task runner. `just demo` runs the whole system on embedded defaults;
# `just test` runs every test. Both fetch and cache what they need in .cache/jagged.

set shell := ["bash", "-euo", "pipefail", "-c"]

export ORT_DYLIB_PATH := justfile_directory() + "/.cache/jagged/ort/libonnxruntime.so"

cache := justfile_directory() + "/.cache/jagged"

# PostgreSQL's server binaries for the private clusters: the system's, else
# those `scripts/fetch.sh postgres` fetches (scripts/fetch.sh pg-bin says which).
export JAGGED_PG_BIN := env("JAGGED_PG_BIN", `scripts/fetch.sh pg-bin`)

# List the recipes.
default:
    @just --list

# Run the demo sweep end to end: private PostgreSQL, local store, coordinator, two workers.
demo *ARGS: (assets "release")
    ./target/release/jagged demo {{ARGS}}

# Run all tests (unit, SQL against a private PostgreSQL, end-to-end over gRPC, real model).
test: tools (assets "debug")
    #!/usr/bin/env bash
    set -uo pipefail
    scripts/fetch.sh light venv duckdb torch
    cargo test --workspace --no-fail-fast 2>&1 | tee {{cache}}/test.log
    rc=${PIPESTATUS[0]}
    awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' {{cache}}/test.log
    exit $rc

# Run an example sweep (examples/<name>.toml) on a local deployment, e.g. `just example azulay-weiss`;
# extra arguments go to `jagged demo` (e.g. `--dataset ~/imagenet/val --limit 1000`).
example name *ARGS: (assets "release")
    scripts/fetch.sh weights-all
    for v in 1 2; do [ -f {{cache}}/models/efficientnet_lite$v.onnx ] || ./target/release/jagged models import efficientnet_lite$v \
        --weights {{cache}}/weights/efficientnet-lite$v.pth --classes {{cache}}/weights/imagenet_classes.json \
        --wnids {{cache}}/weights/imagenet_wnids.json --out {{cache}}/models; done
    for f in 3 5; do if grep -q "efficientnet_lite0_aa$f" examples/{{name}}.toml && [ ! -f {{cache}}/models/efficientnet_lite0_aa$f.onnx ]; then \
        ./target/release/jagged models antialias {{cache}}/models/efficientnet_lite0.onnx --filter $f; fi; done
    if grep -q "cache/jagged/sequences" examples/{{name}}.toml; then scripts/fetch.sh samples venv; \
        [ -d {{cache}}/sequences ] || {{cache}}/venv/bin/python3 scripts/make-sequences.py {{cache}}/samples {{cache}}/sequences; fi
    ./target/release/jagged demo --spec examples/{{name}}.toml --out {{name}}-out {{ARGS}}

# Benchmarks (bench/README.md): `just bench pipeline|python|compute|load|scheduler|fleet|aggregate|reuse`.
bench what="pipeline" *ARGS: (assets "release")
    {{ if what == "python" { "scripts/fetch.sh venv" } else if what == "aggregate" { "scripts/fetch.sh duckdb" } else { "true" } }}
    # A fleet of a thousand connections needs more open files than the usual 1024.
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ./target/release/jagged-bench {{what}} {{ARGS}}

# Fetch ONNX Runtime, PostgreSQL (if the machine has none), weights, samples; build; import EfficientNet-Lite0.
assets profile="debug":
    scripts/fetch.sh ort postgres weights samples
    # Debug builds every target at once, with the features the tests unify, so
    # `cargo test` after it compiles nothing again.
    cargo build {{ if profile == "release" { "--release -p jagged-cli -p jagged-bench" } else { "--workspace --all-targets" } }}
    [ -f {{cache}}/models/efficientnet_lite0.onnx ] || ./target/{{profile}}/jagged models import efficientnet_lite0 \
        --weights {{cache}}/weights/efficientnet-lite0.pth --classes {{cache}}/weights/imagenet_classes.json \
        --wnids {{cache}}/weights/imagenet_wnids.json --out {{cache}}/models

# Check that the system tools the tests need are here; name what is missing and how to install it.
tools:
    @scripts/check-tools.sh

# Start a coordinator and N workers against given PostgreSQL and store URLs (see deploy/).
up workers="2":
    deploy/local-up.sh {{workers}}

# Format and lint.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
