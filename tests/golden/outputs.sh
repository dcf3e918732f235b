#!/usr/bin/env bash
# Prints, for one evstore binary, the text and --json outputs (and exit codes) of hash, ingest,
# verify, diff, mirror, kb verify and rerun on docs/example-packet and on a drifted copy of it,
# with timestamps, durations and the rerun's SOURCE_DATE_EPOCH (the packet's ingest time) masked,
# and the repository's and the work folder's paths shown as <REPO> and <WORK>, so the transcript
# depends on neither. The first ingest's "newly stored" byte count is masked too: the record holds
# the packet folder's absolute path, so its compressed size follows the work folder's path length. Two binaries are output-identical when
# their transcripts are: `diff <(outputs.sh OLD) <(outputs.sh NEW)`; tests/it/golden.rs checks the
# binary under test against the recorded transcript this way.
# Usage: outputs.sh EVSTORE_BINARY [WORK_DIR]. WORK_DIR is emptied first; without it the script
# works in a new temp folder and removes it at the end.
set -uo pipefail
bin="$(realpath "$1")"
repo="$(cd "$(dirname "$0")/../.." && pwd -P)"
if [ $# -ge 2 ]; then
  work="$2"
  rm -rf "$work" && mkdir -p "$work" || exit 2
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/evstore-golden.XXXXXX")" || exit 2
  trap 'rm -rf "$work"' EXIT
fi
work="$(cd "$work" && pwd -P)" && cd "$work" || exit 2
# Only what the script sets reaches the binary: no caller's seal date or lock timeout.
unset SOURCE_DATE_EPOCH EVSTORE_LOCK_TIMEOUT_SECS
export EVSTORE_NO_PROGRESS=1 EVSTORE_STORE="$work/store" TZ=UTC
cp -R "$repo/docs/example-packet" example-packet
cp -R example-packet drifted
printf '\xef\xbb\xbf' | cat - example-packet/summary.md > drifted/summary.md        # bom
sed -i 's/$/\r/' drifted/commands.sh                                       # crlf
sed -i 's/—/--/' drifted/logs/rehearsal.log                                # typography
sed -i 's/"example_only": true/"example_only": false/' drifted/report.json # edited
rm drifted/logs/stderr.log                                                 # missing
echo extra > drifted/extra.txt                                             # extra
# Literal (not pattern) replacement of the work folder's and the repository's paths, the longer
# first, so neither can be half-replaced when one holds the other.
paths() {
  local text first second
  text="$(cat; printf x)"
  text="${text%x}"
  if [ "${#work}" -ge "${#repo}" ]; then first=work second=repo; else first=repo second=work; fi
  text="${text//"${!first}"/<${first^^}>}"
  text="${text//"${!second}"/<${second^^}>}"
  printf '%s' "$text"
}
mask() {
  paths | sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/<TIME>/g' \
    -e 's/"(created|ingested_at|started_at|finished_at|at|time|created_at|mirrored_at|verified_at)(_unix_nanos|_nanos)?": ?[0-9]+/"\1\2": <N>/g' \
    -e 's/(record|attestation)("?:? *"?)[0-9a-f]{64}/\1\2<ID>/g' \
    -e 's#[^ "]*/evstore-rerun-[A-Za-z0-9]+#<TMP>/evstore-rerun-<R>#g' -e 's/evstore-rerun-[A-Za-z0-9]+/evstore-rerun-<R>/g' \
    -e 's/[0-9]+(\.[0-9]+)? ?(ms|s|µs)\b/<DUR>/g' -e 's/"(elapsed|duration)[a-z_]*": ?[0-9.]+/"\1": <N>/g' \
    -e 's/"(SOURCE_DATE_EPOCH|source_date_epoch)": ?("?)[0-9]+"?/"\1": \2<N>\2/g' -e 's/^(source_date_epoch +)[0-9]+/\1<N>/' \
    -e 's/^(newly stored +)[0-9]+ bytes/\1<BYTES> bytes/'
}
run() {
  printf '\n$ evstore %s\n' "$*" | paths
  "$bin" "$@" >out 2>err; rc=$?
  mask <out; printf -- '--- stderr\n'; mask <err; printf -- '--- exit %s\n' "$rc"
}
both() { run "$@"; run --json "$@"; }
both hash example-packet
both hash drifted
run ingest example-packet
run --json ingest example-packet
run ingest drifted
run --json ingest drifted
both verify example-packet
both verify drifted
both verify drifted --against example-packet
both verify example-packet --against example-packet
both diff example-packet example-packet
both diff example-packet drifted
both diff ./example-packet drifted
both diff example-packet/HASH_MANIFEST.txt drifted
mkdir kb
both mirror example-packet kb
both kb verify kb
both verify kb/example-packet --kb kb
both rerun example-packet -- bash "$repo/docs/example-packet/rerun.sh" '{out}'
both rerun --expect 0000000000000000000000000000000000000000000000000000000000000000 -- bash "$repo/docs/example-packet/rerun.sh" '{out}'
run runs
both show example-packet
