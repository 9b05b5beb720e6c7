#!/usr/bin/env bash
# Seeds the fuzz corpus with pydicom's bundled test files (78 small Part-10 files of many
# transfer syntaxes, sequences, private blocks and odd encodings).
# usage: operators/fuzz/seed.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(python3 -c 'import pydicom, os; print(os.path.dirname(pydicom.__file__))')/data/test_files"
dst="$here/corpus/parse_and_pseudonymize"
mkdir -p "$dst"
shopt -s nullglob
files=("$src"/*.dcm)
[ "${#files[@]}" -gt 0 ] || { echo "no .dcm files under $src" >&2; exit 1; }
cp "${files[@]}" "$dst/"
echo "copied ${#files[@]} files from $src to $dst"
