#!/usr/bin/env bash
# Installs what building and running ringwarden needs, if missing: clang/llvm (BPF C),
# libelf, zlib, pkg-config, make (libbpf-sys), xz (build.rs packs the BPF objects with it),
# clang-format (scripts/test checks bpf/ with it), a Rust toolchain, and a mounted tracefs.
# Sourced by scripts/run and scripts/test; safe to run again.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "ringwarden: run this as root (sudo $0): installing packages and loading BPF need it" >&2
  exit 1
fi

need=()
command -v clang >/dev/null || need+=(clang)
command -v llvm-strip >/dev/null || need+=(llvm)
command -v clang-format >/dev/null || need+=(clang-format)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v make >/dev/null || need+=(make)
command -v xz >/dev/null || need+=(xz-utils)
command -v cc >/dev/null || need+=(gcc)
[ -e /usr/include/libelf.h ] || need+=(libelf-dev)
[ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)
command -v curl >/dev/null || { command -v cargo >/dev/null || need+=(curl ca-certificates); }
if [ ${#need[@]} -gt 0 ]; then
  echo "ringwarden: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "ringwarden: installing a Rust toolchain with rustup (Debian's cargo is too old for edition 2024)" >&2
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt >/dev/null
  }
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# Syscall tracepoints are attached through tracefs (the daemon mounts it too).
if [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing
fi
