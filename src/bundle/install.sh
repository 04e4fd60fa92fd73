#!/usr/bin/env bash
# Installs a lory offline bundle (built by bin/bundle) on a Linux x64 machine with no network and no
# Node.js. Checks every part against SHA256SUMS, joins and unpacks them into DIR, then, with the
# bundled Node, finds the CUDA libraries, builds the CUDA op library where nvcc exists, and writes
# DIR/env.sh and DIR/bin/lory. Nothing is left in DIR unless every step succeeds.
#   ./install.sh DIR [--no-cuda-build]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "lory bundle install: $*" >&2; exit 2; }

[[ $# -ge 1 && $1 != -* ]] || die "usage: install.sh DIR [--no-cuda-build] (DIR: a new folder to install into)"
target=$1
shift
setup_args=()
for arg in "$@"; do
  case $arg in
    --no-cuda-build) setup_args+=(--no-cuda-build) ;;
    *) die "unknown option $arg (known: --no-cuda-build)" ;;
  esac
done
[[ -e $target ]] && die "$target already exists: give a new folder (or remove that one)"
for tool in sha256sum tar gzip; do
  command -v "$tool" >/dev/null || die "$tool not found on PATH (coreutils, tar and gzip are needed)"
done
[[ -f $here/SHA256SUMS && -f $here/PAYLOAD.sha256 ]] || die "$here: SHA256SUMS or PAYLOAD.sha256 missing: copy them with the parts"

# Every part present and intact before anything is written.
parts=()
while read -r sum file; do
  [[ -n ${file:-} ]] || continue
  [[ -f $here/$file ]] || die "$here/$file is missing (SHA256SUMS lists it): copy every part"
  actual=$(sha256sum "$here/$file" | cut -d' ' -f1)
  [[ $actual == "$sum" ]] || die "$here/$file: checksum mismatch (SHA256SUMS says $sum, the file hashes to $actual): copy it again"
  parts+=("$here/$file")
done <"$here/SHA256SUMS"
((${#parts[@]} > 0)) || die "$here/SHA256SUMS lists no parts"
read -r payload_sum _ <"$here/PAYLOAD.sha256"
joined_sum=$(cat "${parts[@]}" | sha256sum | cut -d' ' -f1)
[[ $joined_sum == "$payload_sum" ]] || die "the joined parts hash to $joined_sum, PAYLOAD.sha256 says $payload_sum: parts out of order or from different bundles"

mkdir -p "$(dirname "$target")"
target=$(cd "$(dirname "$target")" && pwd)/$(basename "$target")
tmp="$target.tmp-$$"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp"
echo "lory bundle install: unpacking ${#parts[@]} part(s) into $target"
cat "${parts[@]}" | tar -xzf - -C "$tmp"

"$tmp/node/bin/node" --version >/dev/null 2>&1 || die "the bundled Node.js does not run here ($tmp/node/bin/node; it needs Linux x64 with glibc ≥ 2.28)"
"$tmp/node/bin/node" "$tmp/lory/dist/src/bundle/setup.js" --root "$tmp" --install-dir "$target" ${setup_args[@]+"${setup_args[@]}"}
[[ -x $tmp/bin/lory && -f $tmp/env.sh ]] || die "the setup step wrote no $tmp/bin/lory and env.sh"
mv "$tmp" "$target"
trap - EXIT
echo "lory bundle install: done. Run $target/bin/lory doctor (or: source $target/env.sh)"
