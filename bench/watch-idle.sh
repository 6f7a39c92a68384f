#!/usr/bin/env bash
# Memory cost of idle watches (`?watch=true`, docs/reference/api.md "Watch"): the resident
# memory of `barge serve` with no watch open (the floor, measured in the same run), then with
# WATCHERS (default 200) idle watches of `GET …/stages?watch=true` open, each having read its
# first objects. Both figures come from /proc/PID/status (VmRSS) after the daemon settles.
#
#   bench/watch-idle.sh [WATCHERS]          # BARGE_BIN=path/to/barge to skip the release build
#
# Goal: 200 idle watchers cost under 5 MB more than none.
set -euo pipefail
cd "$(dirname "$0")/.."
watchers=${1:-200}
if [ -z "${BARGE_BIN:-}" ]; then
  cargo build --release --locked -q -p barge
  BARGE_BIN=$PWD/target/release/barge
fi
work=$(mktemp -d)
serve_pid=
trap 'kill $serve_pid 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/defs.yaml" <<'YAML'
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: shop}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: shop}
spec:
  interval: 1h
  subscriptions:
    - image: {repoURL: ghcr.io/acme/app}
YAML
for stage in dev staging prod; do
  printf -- '---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {name: %s, namespace: shop}\nspec:\n  requestedFreight:\n    - origin: {kind: Warehouse, name: app}\n      sources: {direct: true}\n' "$stage" >> "$work/defs.yaml"
done
echo bench-watch-token > "$work/token"
# Starts the daemon on $port (discovery finds a closed port at once: nothing but the API
# works). Kept-alive connections (the reference) stay open for the whole measurement.
start() {
  BARGE_DB="sqlite://$work/barge-$1.db" BARGE_WORK_DIR="$work/cache" BARGE_LOG=warn BARGE_API_CLIENT_TIMEOUT=60s \
    "$BARGE_BIN" serve "$work/defs.yaml" --listen "127.0.0.1:$port" --token-file "$work/token" \
    --rewrite "ghcr.io/acme/=127.0.0.1:1/acme/" 2>"$work/serve-$1.log" &
  serve_pid=$!
  for _ in $(seq 300); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
}

# MODE is `watch` (the measurement) or `kept-alive` (a reference: what any idle client's
# connection costs, the same list fetched once and the connection left open). Each mode gets
# a fresh daemon, so that neither reuses heap the other grew.
measure() {
python3 - "$serve_pid" "$port" "$watchers" "$1" <<'PY'
import socket, sys, time
pid, port, n, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def settled():
    # The largest of 5 samples a second apart, once the daemon has been idle for longer than
    # its heap trim period (serve.rs TRIM_EVERY, 10 s): memory at rest, not a burst's garbage.
    time.sleep(11)
    samples = []
    for _ in range(5):
        time.sleep(1)
        samples.append(rss_kb())
    return max(samples)

def connect(path, done):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(30)
    s.sendall(f"GET /api/v1/projects/shop/{path} HTTP/1.1\r\nHost: b\r\n"
              "Authorization: Bearer bench-watch-token\r\n\r\n".encode())
    got = b""
    while not done(got):
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    return s

if mode == "watch":
    # A watch's first objects end with an id alone.
    client = lambda: connect("stages?watch=true", lambda got: b"\nid: " in got)
else:
    client = lambda: connect("stages", lambda got: got.rstrip().endswith(b"}"))

floor = settled()
clients = [client() for _ in range(n)]
loaded = settled()
delta = loaded - floor
what = "idle watches" if mode == "watch" else "kept-alive connections (reference)"
print(f"{n} {what}: {floor / 1024:.1f} MB (floor, none open) -> {loaded / 1024:.1f} MB: "
      f"+{delta / 1024:.2f} MB, {delta / n:.1f} KB each, {loaded / floor:.3f}x the floor")
for s in clients:
    s.close()
PY
}

start watch
measure watch
kill $serve_pid; wait $serve_pid 2>/dev/null || true
start kept-alive
measure kept-alive
echo "goal: 200 idle watches < 5 MB over the floor"
