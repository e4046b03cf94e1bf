#!/usr/bin/env bash
# Install the Debian packages whose data metaxfer's default domains read (scripts/debian-packages.txt).
# As root with apt-get: installs what is missing. Otherwise: says what is missing and how to install it, and
# exits 0 (the domains that need those packages then report themselves unavailable; nothing crashes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mapfile -t wanted < <(grep -v '^\s*#' "$here/debian-packages.txt" | grep -v '^\s*$')
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup: not a Debian system (no dpkg-query): the font, emoji-font and Fashion-MNIST domains will be unavailable." >&2
  exit 0
fi
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#wanted[@]} Debian data packages are installed."
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing ${#missing[@]} Debian data packages (fonts, emoji font, Fashion-MNIST) with apt-get ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  if apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "setup: done."
  else
    echo "setup: apt-get could not install every package; domains needing the missing ones report themselves unavailable." >&2
  fi
else
  echo "setup: ${#missing[@]} Debian data packages are missing (e.g. ${missing[*]:0:5})." >&2
  echo "setup: to enable the font, emoji and Fashion-MNIST domains run as root:" >&2
  echo "  apt-get install --no-install-recommends \$(grep -v '^#' scripts/debian-packages.txt)" >&2
fi
