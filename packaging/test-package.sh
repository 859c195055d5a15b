#!/usr/bin/env bash
# The package test (docs/packaging.md, "The package test"), run by .ci/run
# as root: installs the xha .deb on this machine, checks its files, modes
# and conffiles, that nothing was started, the --check commands on the
# sample configurations, `systemd-analyze verify` on the installed units,
# the bash completion, an upgrade that keeps configuration and state, then
# `dpkg -r` (configuration and state stay) and `dpkg -P` (configuration
# goes, state stays). Ends with "N passed, N failed".
#   packaging/test-package.sh target/debian/xha_....deb
# Skips, saying why, when not root or when this machine already has xha's
# package, configuration or state (it never touches an operator's).
set -uo pipefail
deb=${1:?usage: test-package.sh PATH.deb}
if [ "$(id -u)" != 0 ]; then
  echo "package test skipped: needs root (dpkg -i)"
  exit 0
fi
if dpkg-query -W -f='${Status}' xha 2>/dev/null | grep -q installed; then
  echo "package test skipped: an xha package is installed here already; not touching it"
  exit 0
fi
for path in /etc/xha /etc/xhad /var/lib/xapi-ha /var/lib/xhad; do
  if [ -e "$path" ]; then
    echo "package test skipped: $path exists on this machine; not touching it"
    exit 0
  fi
done

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
mode_is() { # mode_is PATH MODE OWNER:GROUP
  local have
  have=$(stat -c '%a %U:%G' "$1" 2>/dev/null)
  if [ "$have" = "$2 $3" ]; then ok "$1 is $2 $3"; else bad "$1 is '${have:-missing}', want '$2 $3'"; fi
}
expect_exit() { # expect_exit CODE PATTERN DESCRIPTION COMMAND...: exit CODE, output matching
  local want=$1 pattern=$2 what=$3 out code
  shift 3
  out=$("$@" 2>&1)
  code=$?
  if [ "$code" = "$want" ] && grep -qE -- "$pattern" <<<"$out"; then
    ok "$what (exit $code: $out)"
  else
    bad "$what (exit $code, want $want and /$pattern/: $out)"
  fi
}
running_from() { # is any process running the executable $1?
  local exe
  for exe in /proc/[0-9]*/exe; do
    [ "$(readlink "$exe" 2>/dev/null)" = "$1" ] && return 0
  done
  return 1
}
scratch=$(mktemp -d)
cleanup() {
  dpkg -P xha >/dev/null 2>&1 || true
  rm -rf "$scratch" /var/lib/xapi-ha /var/lib/xhad /etc/xha /etc/xhad
}
trap cleanup EXIT

echo "package: $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb -c "$deb" | awk '{print $1, $6}' | sed 's|\./|/|' > "$scratch/contents"

# --- install ---------------------------------------------------------------
check "dpkg -i installs it" dpkg -i "$deb"
for f in /usr/sbin/xapi-ha /usr/sbin/xha-vm-keeper /usr/sbin/xhad /usr/sbin/xha-supervisor /usr/sbin/sr-heartbeat /usr/bin/xe; do
  mode_is "$f" 755 root:root
done
for f in /lib/systemd/system/xapi-ha.service /lib/systemd/system/xhad.service \
  /usr/share/bash-completion/completions/xe /usr/share/zsh/vendor-completions/_xe \
  /usr/share/doc/xha/operations.md /usr/share/doc/xha/packaging.md /usr/share/doc/xha/copyright; do
  mode_is "$f" 644 root:root
done
mode_is /etc/xha 700 root:root
mode_is /etc/xha/xapi-ha.toml 600 root:root
mode_is /etc/xha/xhad.toml.example 600 root:root
mode_is /etc/xhad 700 root:root
mode_is /var/lib/xapi-ha 700 root:root
mode_is /var/lib/xhad 700 root:root
check "conffiles are /etc/xha/xapi-ha.toml and /etc/xha/xhad.toml.example" \
  test "$(sort /var/lib/dpkg/info/xha.conffiles)" = "$(printf '/etc/xha/xapi-ha.toml\n/etc/xha/xhad.toml.example')"
check "nothing outside /usr, /lib and /etc/xha in the package" \
  bash -c "! awk '{print \$2}' '$scratch/contents' | grep -vE '^/(usr|lib|etc/xha)(/|\$)|^/\$|^/etc/\$'"
check "install started neither xapi-ha nor xhad" \
  bash -c "! { $(declare -f running_from); running_from /usr/sbin/xapi-ha || running_from /usr/sbin/xhad; }"
check "the units are not enabled (no wants/ link)" \
  bash -c '! ls /etc/systemd/system/*.wants/xapi-ha.service /etc/systemd/system/*.wants/xhad.service 2>/dev/null | grep -q .'

# --- the --check commands on the sample configurations ---------------------
expect_exit 0 ': ok' "xapi-ha --check accepts the installed configuration" \
  xapi-ha --config /etc/xha/xapi-ha.toml --check
sed 's/^max_connections = .*/max_connections = 0/' /etc/xha/xapi-ha.toml > "$scratch/bad.toml"
expect_exit 3 max_connections "xapi-ha --check refuses a bad value, naming the key" \
  xapi-ha --config "$scratch/bad.toml" --check
expect_exit 6 secret-file "xhad --check on the sample as shipped: the secret file is missing" \
  xhad --config /etc/xha/xhad.toml.example --check
# The sample with its secret and statefile made real (and private paths):
# xhad --check then passes, opening the statefile sr-heartbeat formatted.
generation=$(sed -n 's/^pool-generation = "\(.*\)"/\1/p' /etc/xha/xhad.toml.example)
(umask 077; head -c 32 /dev/urandom > "$scratch/pool-secret")
sr-heartbeat format-statefile "$scratch/statefile" --pool-uuid "$generation" >/dev/null 2>&1
mkdir -m 700 "$scratch/state"
sed -e "s|^secret-file = .*|secret-file = \"$scratch/pool-secret\"|" \
    -e "s|^statefiles = .*|statefiles = [\"$scratch/statefile\"]|" \
    -e "s|^control-socket = .*|control-socket = \"$scratch/control.sock\"|" \
    -e "s|^state-dir = .*|state-dir = \"$scratch/state\"|" \
    /etc/xha/xhad.toml.example > "$scratch/xhad.toml"
expect_exit 0 . "xhad --check passes on the sample with a real secret and statefile" \
  xhad --config "$scratch/xhad.toml" --check
sed -i 's/^timeout = .*/timeout = 5/' "$scratch/xhad.toml"
expect_exit 7 timeout "xhad --check refuses timeout = 5 (below 10), naming the key" \
  xhad --config "$scratch/xhad.toml" --check

# --- the units ---------------------------------------------------------------
out=$(systemd-analyze verify /lib/systemd/system/xapi-ha.service /lib/systemd/system/xhad.service 2>&1)
code=$?
if [ "$code" = 0 ] && [ -z "$out" ]; then
  ok "systemd-analyze verify passes on the installed units, silently"
else
  bad "systemd-analyze verify (exit $code): $out"
fi
check "xhad.service never restarts a fenced daemon (SIGKILL, exit 2 and 17 prevent restart)" \
  grep -qE '^RestartPreventExitStatus=.*\b2\b.*\b17\b.*SIGKILL' /lib/systemd/system/xhad.service

# --- completion ---------------------------------------------------------------
complete_line() { # complete_line LINE: what bash's completion offers
  bash -c 'source /usr/share/bash-completion/completions/xe
           COMP_LINE=$1; COMP_POINT=${#1}; _xe; printf "%s\n" "${COMPREPLY[@]}"' _ "$1"
}
check "bash completes a command name (xe pool-ha-en)" \
  test "$(complete_line 'xe pool-ha-en')" = pool-ha-enable
check "bash completes a parameter name (xe pool-ha-enable heart)" \
  test "$(complete_line 'xe pool-ha-enable heart')" = heartbeat-sr-uuids=
check "bash completes a fixed value (xe sr-create type=b)" \
  test "$(complete_line 'xe sr-create type=b')" = block

# --- upgrade keeps configuration and state ------------------------------------
echo "# changed by the operator" >> /etc/xha/xapi-ha.toml
echo state > /var/lib/xapi-ha/pool-db
version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -R "$deb" "$scratch/next"
sed -i "s/^Version: .*/Version: ${version}+upgrade1/" "$scratch/next/DEBIAN/control"
dpkg-deb -b "$scratch/next" "$scratch/next.deb" >/dev/null
check "dpkg -i of a newer version upgrades" dpkg -i --force-confold "$scratch/next.deb"
check "upgrade kept the operator's configuration" grep -q 'changed by the operator' /etc/xha/xapi-ha.toml
check "upgrade kept the state" grep -qx state /var/lib/xapi-ha/pool-db
mode_is /var/lib/xapi-ha 700 root:root

# --- remove and purge ------------------------------------------------------------
check "dpkg -r removes it" dpkg -r xha
check "remove took the binaries" test ! -e /usr/sbin/xhad -a ! -e /usr/bin/xe -a ! -e /lib/systemd/system/xhad.service
check "remove kept the configuration" grep -q 'changed by the operator' /etc/xha/xapi-ha.toml
check "remove kept the state" grep -qx state /var/lib/xapi-ha/pool-db
check "dpkg -P purges it" dpkg -P xha
check "purge removed /etc/xha and /etc/xhad" test ! -e /etc/xha -a ! -e /etc/xhad
check "purge kept the state (/var/lib/xapi-ha, /var/lib/xhad)" \
  bash -c 'grep -qx state /var/lib/xapi-ha/pool-db && test -d /var/lib/xhad'
left=$(awk '$1 !~ /^d/ {print $2}' "$scratch/contents" | while read -r f; do [ -e "$f" ] && echo "$f"; done)
check "no file of the package is left after purge${left:+: $left}" test -z "$left"

echo "package: $passed passed, $failed failed"
[ "$failed" = 0 ]
