#!/usr/bin/env bash
# Token issuance benchmark (a measurement, not a test): client_credentials tokens/s of Portcullis
# with RS256, ES256 and EdDSA keys, side by side with the Node oidc-provider peer (`idp_token`,
# RS256), measured interleaved in the same wrk rounds by ../shared/peers/bench.sh; plus the
# machine's raw RS256 signing rate from `openssl speed rsa2048` (one core and -multi 2).
# Prints a markdown table and saves it to bench/results/token-issuance-<date>.md.
#
#   bash bench/token-issuance.sh                       # full run (bench.sh defaults: 3 rounds x 10 s)
#   ROUNDS=1 DUR=2 WARM=1 IDLE_WAIT=5 QUIET_WAIT=3 OPENSSL_SECONDS=1 bash bench/token-issuance.sh   # smoke
#
# Knobs (environment):
#   PORTCULLIS_BIN    binary to measure (default target/release/portcullis, see BUILD)
#   BUILD             unset: build when the binary is missing or older than crates/, Cargo.*;
#                     1: always run `cargo build --release -p portcullis`; 0: never build
#   PORTCULLIS_LOG    log filter of `serve` (default: the binary's, info = one access-log line per
#                     request, written to the temporary serve.log); e.g. warn to measure without it
#   PC_PORT=8180      port of Portcullis (loopback)
#   ROUNDS DUR WARM CONN NICE IDLE_WAIT IDLE_LOAD QUIET_WAIT QUIET_MAX   passed through to bench.sh
#   OPENSSL_SECONDS=10  seconds per openssl speed test (openssl's own default is 10)
#   OPENSSL_MULTI=2     processes for the parallel openssl run
#   PEERS_DIR         peer recipes (default <repo>/../shared/peers); PEERS_HOME / PEERS_RUN as there
#   KEEP_TMP=1        keep the temporary data dir (config, org file, server log) after the run
# Peers that are already running (all four pid files in $PEERS_RUN alive) are used and left
# running; otherwise this script starts them with start.sh and stops them with stop.sh on exit.
# Portcullis is started here and its PID alone is killed on exit.
set -euo pipefail

ROOT=$(git -C "$(dirname "$(readlink -f "$0")")" rev-parse --show-toplevel)
PEERS=${PEERS_DIR:-$ROOT/../shared/peers}
[ -f "$PEERS/bench.sh" ] || { echo "no peer recipes at $PEERS (set PEERS_DIR)" >&2; exit 1; }
PEERS=$(cd "$PEERS" && pwd)
export PEERS_RUN=${PEERS_RUN:-/tmp/portcullis-peers}
export PEERS_HOME=${PEERS_HOME:-$HOME/.cache/portcullis-peers}
PC_PORT=${PC_PORT:-8180}
OPENSSL_SECONDS=${OPENSSL_SECONDS:-10}
OPENSSL_MULTI=${OPENSSL_MULTI:-2}
export ROUNDS=${ROUNDS:-3} DUR=${DUR:-10} WARM=${WARM:-3} CONN=${CONN:-32}
SECRET=bench-secret-0123456789          # the peer's client secret (wrk-token.lua sends it)
ALGS="RS256 ES256 EdDSA"
PY=${PY:-$PEERS_HOME/venv/bin/python}    # installed by install.sh; bench.sh uses it too

log() { printf '\n== %s\n' "$*" >&2; }
die() { echo "token-issuance: $*" >&2; exit 1; }
lower() { tr '[:upper:]' '[:lower:]' <<<"$1"; }

# ---------------------------------------------------------------- cleanup (our PIDs only)
PC_PID= STARTED_PEERS=0 TMP= OK=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$PC_PID" ] && kill -0 "$PC_PID" 2>/dev/null; then
    kill "$PC_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PC_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PC_PID" 2>/dev/null && kill -9 "$PC_PID" 2>/dev/null
    echo "stopped portcullis ($PC_PID)" >&2
  fi
  if [ "$STARTED_PEERS" = 1 ]; then bash "$PEERS/stop.sh" >&2 || true; fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "$OK" = 1 ] && [ "${KEEP_TMP:-0}" != 1 ]; then rm -rf "$TMP"
    else echo "temporary files (config, org file, serve.log) kept in $TMP" >&2; fi
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

# ---------------------------------------------------------------- portcullis
if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PC_PORT/"; then
  die "something already listens on 127.0.0.1:$PC_PORT (set PC_PORT)"
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-token-bench.XXXXXX")
mkdir -p "$TMP/data"
cat > "$TMP/config.yaml" <<EOF
version: 1
dataDir: $TMP/data
idp:
  listen: 127.0.0.1:$PC_PORT
EOF
{
  echo "version: 1"
  echo "authorizationServers:"
  for alg in $ALGS; do
    id=bench-$(lower "$alg")
    cat <<EOF
  - id: $id
    name: $id
    audiences: [api://gateway-bench]
    signingAlg: $alg
    scopes:
      - name: read:things
      - name: write:things
    policies:
      - name: bench
        priority: 1
        clients: ALL_CLIENTS
        rules:
          - name: cc
            priority: 1
            grantTypes: [client_credentials]
            scopes: "*"
            accessTokenLifetimeMinutes: 60
EOF
  done
  cat <<EOF
clients:
  - clientId: bench-client
    name: bench client
    type: service
    grantTypes: [client_credentials]
    tokenEndpointAuthMethod: client_secret_basic
    secretEnv: BENCH_CLIENT_SECRET
EOF
} > "$TMP/org.yaml"

log "applying the bench org ($TMP/org.yaml) and starting $BIN_VERSION on 127.0.0.1:$PC_PORT"
BENCH_CLIENT_SECRET=$SECRET "$BIN" apply -f "$TMP/org.yaml" --config "$TMP/config.yaml" >&2
"$BIN" serve --config "$TMP/config.yaml" > "$TMP/serve.log" 2>&1 &
PC_PID=$!
deadline=$((SECONDS + 30))
until curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$PC_PORT/health"; do
  if ! kill -0 "$PC_PID" 2>/dev/null; then
    tail -20 "$TMP/serve.log" >&2; PC_PID=; die "portcullis serve exited during start-up"
  fi
  [ "$SECONDS" -lt "$deadline" ] || { tail -20 "$TMP/serve.log" >&2; die "no 200 from /health within 30 s"; }
  sleep 0.1
done
echo "portcullis up (pid $PC_PID)" >&2

# Each server must issue a token signed with the algorithm its row claims.
token_url() { echo "http://127.0.0.1:$PC_PORT/oauth2/bench-$(lower "$1")/v1/token"; }
for alg in $ALGS; do
  body=$(curl -sf -u "bench-client:$SECRET" -d grant_type=client_credentials \
              --data-urlencode 'scope=read:things write:things' "$(token_url "$alg")") \
    || die "no token from $(token_url "$alg")"
  got=$("$PY" - "$body" <<'PY'
import base64, json, sys
h = json.loads(sys.argv[1])["access_token"].split(".")[0]
print(json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))["alg"])
PY
  )
  [ "$got" = "$alg" ] || die "bench-$(lower "$alg") signed its token with $got, not $alg"
done

# ---------------------------------------------------------------- measure (interleaved)
EXTRA=
for alg in $ALGS; do EXTRA+="pc_$(lower "$alg")=$(token_url "$alg")|@token; "; done
log "bench.sh: idp_token and ${ALGS// /, } in the same rounds (ROUNDS=$ROUNDS DUR=$DUR WARM=$WARM CONN=$CONN)"
MARK=$(mktemp); BENCH_RC=0
TARGETS="idp_token" EXTRA_TARGETS="$EXTRA" EXTRA_PIDS="$PC_PID" bash "$PEERS/bench.sh" >&2 || BENCH_RC=$?
# bench.sh has been seen to exit non-zero from its exit trap after a complete run; what counts
# is a summary written by this run.
if [ ! "$PEERS_RUN/results/summary.md" -nt "$MARK" ]; then rm -f "$MARK"; die "bench.sh failed (exit $BENCH_RC) before writing its summary"; fi
rm -f "$MARK"
[ "$BENCH_RC" = 0 ] || echo "note: bench.sh exited $BENCH_RC after writing its summary" >&2
SUMMARY=$PEERS_RUN/results/summary.md

# ---------------------------------------------------------------- raw signing rate
# Run while the servers are idle, after a quiet second (same rule as bench.sh), at the same nice
# level as the measured servers. openssl divides by CPU user time (its default), per process.
NICE=${NICE:--10}
if [ "$NICE" -lt 0 ] && [ "$(id -u)" != 0 ]; then NICE=0; fi
cpu_busy() {
  local a b ta=0 tb=0 i; a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  for i in 1 2 3 4 5 6 7 8; do ta=$((ta+a[i])); tb=$((tb+b[i])); done
  echo $(( 100 - 100*((b[4]+b[5])-(a[4]+a[5]))/(tb-ta) ))
}
quiet() { local w=0; while [ "$(cpu_busy)" -ge "${QUIET_MAX:-25}" ] && [ "$w" -lt "${QUIET_WAIT:-90}" ]; do w=$((w+1)); done; }
sign_rate() { # openssl output on stdin -> the rsa 2048 sign/s figure (column found by its header)
  awk '/sign\/s/ { n = split($0, h); for (i = 1; i <= n; i++) if (h[i] == "sign/s") col = i }
       col && /^rsa +2048 +bits/ { sub(/^rsa +2048 +bits +/, ""); split($0, v); print v[col]; exit }'
}
log "openssl speed rsa2048 (one core, then -multi $OPENSSL_MULTI), $OPENSSL_SECONDS s each"
quiet; SSL1_OUT=$(nice -n "$NICE" openssl speed -seconds "$OPENSSL_SECONDS" rsa2048 2>&1)
quiet; SSLN_OUT=$(nice -n "$NICE" openssl speed -seconds "$OPENSSL_SECONDS" -multi "$OPENSSL_MULTI" rsa2048 2>&1)
SSL1=$(sign_rate <<<"$SSL1_OUT"); SSLN=$(sign_rate <<<"$SSLN_OUT")
[ -n "$SSL1" ] && [ -n "$SSLN" ] || { echo "$SSL1_OUT" "$SSLN_OUT" >&2; die "cannot find sign/s in the openssl output"; }

# ---------------------------------------------------------------- report
STAMP=$(date +%Y-%m-%d_%H%M%S)
SMOKE=0; { [ "$ROUNDS" -lt 3 ] || [ "$DUR" -lt 10 ]; } && SMOKE=1
mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/token-issuance-$STAMP$([ "$SMOKE" = 1 ] && echo -smoke || true).md
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo "+dirty")
if [ -n "${PORTCULLIS_BIN:-}" ]; then COMMIT="$COMMIT?, binary $BIN"
elif [ -n "$(find "$ROOT/crates" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$BIN" -type f -print -quit)" ]; then
  COMMIT="$COMMIT, BINARY OLDER THAN THE SOURCES"
fi
LOG_FILTER=${PORTCULLIS_LOG:-default (info: access log on)}
export SSL1 SSLN OPENSSL_MULTI OPENSSL_SECONDS SMOKE BIN_VERSION COMMIT STAMP PC_PORT LOG_FILTER
"$PY" - "$SUMMARY" > "$OUT" <<'PY'
import os, re, subprocess, sys
e = os.environ
summary = open(sys.argv[1]).read()
rows = {}
for line in summary.splitlines():
    c = [x.strip() for x in line.strip().strip("|").split("|")]
    if len(c) == 7 and re.fullmatch(r"[\d.]+", c[1]):
        rows[c[0]] = dict(rps=float(c[1]), p50=float(c[2]), p99=float(c[3]), rounds=c[4], err=int(c[5]), cpu=c[6])
ssl1, ssln = float(e["SSL1"]), float(e["SSLN"])
peer = rows["idp_token"]["rps"]
targets = [("idp_token", "oidc-provider 9.13.3 (Node)", "RS256"),
           ("pc_rs256", "Portcullis", "RS256"), ("pc_es256", "Portcullis", "ES256"), ("pc_eddsa", "Portcullis", "EdDSA")]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
nproc = subprocess.getoutput("nproc")
print(f"# Token issuance: client_credentials tokens/s ({e['STAMP']})\n")
if e["SMOKE"] == "1":
    print(f"**SMOKE RUN (ROUNDS={e['ROUNDS']}, DUR={e['DUR']} s): proves the script works; not a measurement.**\n")
print(f"{e['BIN_VERSION']} (commit {e['COMMIT']}, log filter {e['LOG_FILTER']}) on 127.0.0.1:{e['PC_PORT']} vs oidc-provider on :9100; "
      f"wrk -t1 -c{e['CONN']} -d{e['DUR']}s, {e['WARM']} s warm-up, {e['ROUNDS']} interleaved round(s), medians "
      f"(../shared/peers/bench.sh); nproc={nproc} ({cpu}). Load generator and servers share the cores.\n")
print(f"| target | alg | tokens/s | p50 ms | p99 ms | ratio to oidc-provider | ratio to openssl RS256 sign/s ({e['OPENSSL_MULTI']} cores) | tokens/s per round | errors |")
print("|---|---|---|---|---|---|---|---|---|")
for key, who, alg in targets:
    r = rows[key]
    raw = f"{r['rps'] / ssln:.2f}" if alg == "RS256" else "—"
    print(f"| {key} ({who}) | {alg} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {r['rps'] / peer:.2f} | {raw} | {r['rounds']} | {r['err']} |")
print(f"\nRaw RSA-2048 signing (`openssl speed -seconds {e['OPENSSL_SECONDS']} rsa2048`, CPU user time):\n")
print("| openssl | sign/s |\n|---|---|")
print(f"| rsa2048, one core | {ssl1:.0f} |")
print(f"| rsa2048, -multi {e['OPENSSL_MULTI']} | {ssln:.0f} |")
print("\nRS256 tokens/s divided by the raw multi-core signing rate is the share of the machine's pure "
      "signing capacity that ends up as issued tokens (wrk, HTTP, auth and JSON take the rest).")
bad = [k for k, *_ in targets if rows[k]["err"]]
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
