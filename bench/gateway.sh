#!/usr/bin/env bash
# Gateway benchmark (a measurement, not a test): requests/s and latency of `portcullis gateway`
# validating an RS256 JWT on every request (`pc_gateway_jwt`) and proxying without auth
# (`pc_gateway_plain`), side by side with the peers (direct upstream, nginx plain proxy, haproxy
# plain proxy, haproxy + JWT), measured interleaved in the same wrk rounds by
# ../shared/peers/bench.sh; plus the gateway's RSS after start and idle after the load.
# Prints a markdown table and saves it to bench/results/gateway-<date>.md.
#
#   bash bench/gateway.sh                                        # full run (bench.sh defaults: 3 rounds x 10 s)
#   ROUNDS=1 DUR=2 WARM=1 IDLE_WAIT=5 QUIET_WAIT=3 bash bench/gateway.sh   # smoke
#
# Knobs (environment):
#   PORTCULLIS_BIN    binary to measure (default target/release/portcullis, see BUILD)
#   BUILD             unset: build when the binary is missing or older than crates/, Cargo.*;
#                     1: always run `cargo build --release -p portcullis`; 0: never build
#   PORTCULLIS_LOG=warn  log filter of `gateway` (written to the temporary gateway.log); info
#                     measures with the access log (one line per request)
#   PC_PORT=8190      port of the gateway (loopback)
#   RSS_SETTLE=3      seconds the gateway stays idle after the last wrk run before its RSS is read
#   ROUNDS DUR WARM CONN NICE IDLE_WAIT IDLE_LOAD QUIET_WAIT QUIET_MAX   passed through to bench.sh
#   PEERS_DIR         peer recipes (default <repo>/../shared/peers); PEERS_HOME / PEERS_RUN as there
#   KEEP_TMP=1        keep the temporary dir (gateway file, gateway log) after the run
# Peers that are already running (all four pid files in $PEERS_RUN alive) are used and left
# running; otherwise this script starts them with start.sh and stops them with stop.sh on exit.
# The gateway is started here and its PID alone is killed on exit.
set -euo pipefail

ROOT=$(git -C "$(dirname "$(readlink -f "$0")")" rev-parse --show-toplevel)
PEERS=${PEERS_DIR:-$ROOT/../shared/peers}
[ -f "$PEERS/bench.sh" ] || { echo "no peer recipes at $PEERS (set PEERS_DIR)" >&2; exit 1; }
PEERS=$(cd "$PEERS" && pwd)
export PEERS_RUN=${PEERS_RUN:-/tmp/portcullis-peers}
export PEERS_HOME=${PEERS_HOME:-$HOME/.cache/portcullis-peers}
export PORTCULLIS_LOG=${PORTCULLIS_LOG:-warn}
PC_PORT=${PC_PORT:-8190}
RSS_SETTLE=${RSS_SETTLE:-3}
export ROUNDS=${ROUNDS:-3} DUR=${DUR:-10} WARM=${WARM:-3} CONN=${CONN:-32}
PY=${PY:-$PEERS_HOME/venv/bin/python}    # installed by install.sh; bench.sh uses it too
PC=http://127.0.0.1:$PC_PORT

log() { printf '\n== %s\n' "$*" >&2; }
die() { echo "gateway: $*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup (our PIDs only)
PC_PID= STARTED_PEERS=0 TMP= OK=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$PC_PID" ] && kill -0 "$PC_PID" 2>/dev/null; then
    kill "$PC_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PC_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PC_PID" 2>/dev/null && kill -9 "$PC_PID" 2>/dev/null
    echo "stopped portcullis gateway ($PC_PID)" >&2
  fi
  if [ "$STARTED_PEERS" = 1 ]; then bash "$PEERS/stop.sh" >&2 || true; fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "$OK" = 1 ] && [ "${KEEP_TMP:-0}" != 1 ]; then rm -rf "$TMP"
    else echo "temporary files (gateway.yaml, gateway.log) kept in $TMP" >&2; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- binary
if [ -n "${PORTCULLIS_BIN:-}" ]; then
  BIN=$(readlink -f "$PORTCULLIS_BIN")
else
  BIN=$ROOT/target/release/portcullis
  stale=
  [ -x "$BIN" ] && stale=$(find "$ROOT/crates" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$BIN" -type f -print -quit)
  if [ "${BUILD:-auto}" = 1 ] || { [ "${BUILD:-auto}" != 0 ] && { [ ! -x "$BIN" ] || [ -n "$stale" ]; }; }; then
    log "building the release binary (cargo build --release -p portcullis)${stale:+: $stale is newer}"
    (cd "$ROOT" && cargo build --release -p portcullis)
  elif [ -n "$stale" ]; then
    echo "warning: $stale is newer than $BIN (BUILD=0): measuring an old build" >&2
  fi
fi
[ -x "$BIN" ] || die "no executable portcullis at $BIN"
"$BIN" gateway --help >/dev/null 2>&1 || die "$BIN has no 'gateway' subcommand"
BIN_VERSION=$("$BIN" --version 2>/dev/null || echo "portcullis ?")

# ---------------------------------------------------------------- peers
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null \
   || [ ! -d "$PEERS_HOME/node/node_modules/oidc-provider" ] || [ ! -x "$PEERS_HOME/venv/bin/python" ]; then
  log "installing the peers (bash $PEERS/install.sh)"
  bash "$PEERS/install.sh"
fi
alive() { [ -s "$1" ] && kill -0 "$(head -1 "$1")" 2>/dev/null; }
running=0
for f in nginx-upstream nginx-proxy haproxy idp; do alive "$PEERS_RUN/$f.pid" && running=$((running+1)); done
if [ "$running" = 4 ]; then
  log "peers already running (pid files in $PEERS_RUN): using them, leaving them running"
elif [ "$running" = 0 ]; then
  log "starting the peers (bash $PEERS/start.sh)"
  STARTED_PEERS=1
  bash "$PEERS/start.sh" >&2
else
  die "only $running of the 4 peers run (pid files in $PEERS_RUN): run 'bash $PEERS/stop.sh' first"
fi

# ---------------------------------------------------------------- portcullis gateway
if curl -s -o /dev/null --max-time 1 "$PC/"; then
  die "something already listens on 127.0.0.1:$PC_PORT (set PC_PORT)"
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-gateway-bench.XXXXXX")
# Like haproxy_jwt: issuer, audience, RS256 only, scope read:things, same upstream :9001 (which
# answers every path with the same 200 JSON, so /plain gets the same answer as /api).
cat > "$TMP/gateway.yaml" <<EOF
version: 1
listeners: ["127.0.0.1:$PC_PORT"]
realm: bench
issuers:
  - issuer: http://127.0.0.1:9100
    audiences: [api://gateway-bench]
    jwksUri: http://127.0.0.1:9100/jwks
    algorithms: [RS256]
upstreams:
  - name: upstream
    targets: [http://127.0.0.1:9001]
routes:
  - name: jwt
    path: /api
    methods: [GET]
    upstream: upstream
    scopes: {allOf: [read:things]}
  - name: plain
    path: /plain
    methods: [GET]
    upstream: upstream
    auth: none
EOF
"$BIN" gateway --config "$TMP/gateway.yaml" --check >&2 || die "the gateway file is refused"

log "starting $BIN_VERSION gateway on 127.0.0.1:$PC_PORT (PORTCULLIS_LOG=$PORTCULLIS_LOG)"
"$BIN" gateway --config "$TMP/gateway.yaml" > "$TMP/gateway.log" 2>&1 &
PC_PID=$!
TOKEN=$("$PY" "$PEERS/mktoken.py" good)
status() { # URL [TOKEN] -> HTTP status of one GET ("000" when nothing answers)
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 ${2:+-H "Authorization: Bearer $2"} "$1" || true
}
# Ready = the JWT route accepts the good token (listening, and the JWKS has been fetched).
deadline=$((SECONDS + 30)) code=000
until code=$(status "$PC/api" "$TOKEN"); [ "$code" = 200 ]; do
  if ! kill -0 "$PC_PID" 2>/dev/null; then
    tail -20 "$TMP/gateway.log" >&2; PC_PID=; die "portcullis gateway exited during start-up"
  fi
  [ "$SECONDS" -lt "$deadline" ] || { tail -20 "$TMP/gateway.log" >&2; die "GET /api with the good token: $code, not 200, within 30 s"; }
  sleep 0.1
done
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$PC_PID/status"; }
RSS_START=$(rss_kib)
echo "gateway up (pid $PC_PID), VmRSS $RSS_START KiB" >&2

# Both routes must answer as their rows claim, with the upstream's body.
expect() { # WANT LABEL URL [TOKEN]
  local got; got=$(status "$3" "${4:-}")
  [ "$got" = "$1" ] || { tail -20 "$TMP/gateway.log" >&2; die "$2: HTTP $got, expected $1"; }
  echo "ok: $2 -> $got" >&2
}
expect 200 "pc_gateway_jwt, good token" "$PC/api" "$TOKEN"
expect 401 "pc_gateway_jwt, no token" "$PC/api"
expect 401 "pc_gateway_jwt, tampered token" "$PC/api" "$("$PY" "$PEERS/mktoken.py" tampered)"
expect 403 "pc_gateway_jwt, token without read:things" "$PC/api" "$("$PY" "$PEERS/mktoken.py" noscope)"
expect 200 "pc_gateway_plain, no token" "$PC/plain"
upstream_body() { # URL [TOKEN]: the answer must be the upstream's fixed JSON
  local body; body=$(curl -sf --max-time 2 ${2:+-H "Authorization: Bearer $2"} "$1") || true
  [[ $body == *'"service":"upstream"'* ]] || die "$1 did not return the upstream's body (got: ${body:0:200})"
}
upstream_body "$PC/api" "$TOKEN"
upstream_body "$PC/plain"

# ---------------------------------------------------------------- measure (interleaved)
EXTRA="pc_gateway_jwt=$PC/api|Authorization: Bearer {TOKEN}; pc_gateway_plain=$PC/plain"
log "bench.sh: direct, nginx, haproxy_plain, haproxy_jwt, pc_gateway_jwt, pc_gateway_plain in the same rounds (ROUNDS=$ROUNDS DUR=$DUR WARM=$WARM CONN=$CONN)"
MARK=$(mktemp); BENCH_RC=0
TARGETS="direct nginx haproxy_plain haproxy_jwt" EXTRA_TARGETS="$EXTRA" EXTRA_PIDS="$PC_PID" bash "$PEERS/bench.sh" >&2 || BENCH_RC=$?
# bench.sh has been seen to exit non-zero from its exit trap after a complete run; what counts
# is a summary written by this run.
if [ ! "$PEERS_RUN/results/summary.md" -nt "$MARK" ]; then rm -f "$MARK"; die "bench.sh failed (exit $BENCH_RC) before writing its summary"; fi
rm -f "$MARK"
[ "$BENCH_RC" = 0 ] || echo "note: bench.sh exited $BENCH_RC after writing its summary" >&2
SUMMARY=$PEERS_RUN/results/summary.md
kill -0 "$PC_PID" 2>/dev/null || { PC_PID=; die "the gateway died during the measurement (log: $TMP/gateway.log)"; }
sleep "$RSS_SETTLE"                      # an idle period on purpose, not a synchronisation
RSS_IDLE=$(rss_kib)
RSS_PEAK=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PC_PID/status")

# ---------------------------------------------------------------- report
STAMP=$(date +%Y-%m-%d_%H%M%S)
SMOKE=0; { [ "$ROUNDS" -lt 3 ] || [ "$DUR" -lt 10 ]; } && SMOKE=1
mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/gateway-$STAMP$([ "$SMOKE" = 1 ] && echo -smoke || true).md
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo "+dirty")
if [ -n "${PORTCULLIS_BIN:-}" ]; then COMMIT="$COMMIT?, binary $BIN"
elif [ -n "$(find "$ROOT/crates" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$BIN" -type f -print -quit)" ]; then
  COMMIT="$COMMIT, BINARY OLDER THAN THE SOURCES"
fi
export SMOKE BIN_VERSION COMMIT STAMP PC_PORT RSS_START RSS_IDLE RSS_PEAK RSS_SETTLE
"$PY" - "$SUMMARY" > "$OUT" <<'PY'
import os, re, subprocess, sys
e = os.environ
summary = open(sys.argv[1]).read()
rows = {}
for line in summary.splitlines():
    c = [x.strip() for x in line.strip().strip("|").split("|")]
    if len(c) == 7 and re.fullmatch(r"[\d.]+", c[1]):
        rows[c[0]] = dict(rps=float(c[1]), p50=float(c[2]), p99=float(c[3]), rounds=c[4], err=int(c[5]), cpu=c[6])
targets = [("direct", "nginx upstream :9001, no proxy"),
           ("nginx", "nginx plain proxy :9002"),
           ("haproxy_plain", "haproxy plain proxy :9004"),
           ("haproxy_jwt", "haproxy + RS256 JWT :9003"),
           ("pc_gateway_plain", "Portcullis, route `auth: none`"),
           ("pc_gateway_jwt", "Portcullis, RS256 JWT + scope")]
nginx, hjwt = rows["nginx"]["rps"], rows["haproxy_jwt"]["rps"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
nproc = subprocess.getoutput("nproc")
mib = lambda k: f"{int(k) / 1024:.1f} MiB"
print(f"# Gateway: RS256 JWT validation per request, req/s ({e['STAMP']})\n")
if e["SMOKE"] == "1":
    print(f"**SMOKE RUN (ROUNDS={e['ROUNDS']}, DUR={e['DUR']} s): proves the script works; not a measurement.**\n")
print(f"{e['BIN_VERSION']} `gateway` (commit {e['COMMIT']}, PORTCULLIS_LOG={e['PORTCULLIS_LOG']}) on 127.0.0.1:{e['PC_PORT']}, "
      f"all proxies to the nginx upstream :9001; wrk -t1 -c{e['CONN']} -d{e['DUR']}s, {e['WARM']} s warm-up, "
      f"{e['ROUNDS']} interleaved round(s), medians (../shared/peers/bench.sh); nproc={nproc} ({cpu}). "
      "Load generator and servers share the cores.\n")
print("| target | what | req/s | p50 ms | p99 ms | errors | ratio to nginx plain proxy | ratio to haproxy_jwt | req/s per round |")
print("|---|---|---|---|---|---|---|---|---|")
for key, what in targets:
    r = rows[key]
    print(f"| {key} | {what} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {r['err']} | "
          f"{r['rps'] / nginx:.2f} | {r['rps'] / hjwt:.2f} | {r['rounds']} |")
print(f"\nJWT check / plain proxy of the same server: Portcullis "
      f"{rows['pc_gateway_jwt']['rps'] / rows['pc_gateway_plain']['rps']:.2f}, "
      f"haproxy {hjwt / rows['haproxy_plain']['rps']:.2f}.\n")
print("| gateway memory (VmRSS) | |\n|---|---|")
print(f"| after start (JWKS fetched, before any load) | {mib(e['RSS_START'])} |")
print(f"| idle, {e['RSS_SETTLE']} s after the last wrk run | {mib(e['RSS_IDLE'])} |")
print(f"| peak (VmHWM) | {mib(e['RSS_PEAK'])} |")
bad = [k for k, _ in targets if rows[k]["err"]]
if bad:
    print(f"\n**WARNING: errors/non-2xx answers for {', '.join(bad)}: those figures are not comparable.**")
print("\n<details><summary>bench.sh summary</summary>\n")
print(summary.strip())
print("\n</details>")
PY
OK=1
echo
cat "$OUT"
echo
echo "saved to ${OUT#"$ROOT"/}"
