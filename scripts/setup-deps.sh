#!/usr/bin/env bash
# scripts/setup-deps.sh PACKAGE... - make sure Debian/Ubuntu packages are installed.
#
# Installs what is missing with apt-get (directly as root, else through sudo).
# When neither works, prints the exact command to run and fails.
set -euo pipefail

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "memdiag: missing packages: ${missing[*]}" >&2
  echo "memdiag: install them with:  sudo apt-get update && sudo ${cmd[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "memdiag: missing packages: ${missing[*]} (no apt-get here; install them with your package manager)" >&2
  exit 1
fi
echo "memdiag: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; refresh them once per run.
if [ -z "${MEMDIAG_APT_UPDATED:-}" ]; then
  "${sudo[@]}" apt-get update -qq
fi
"${sudo[@]}" "${cmd[@]}" >/dev/null
