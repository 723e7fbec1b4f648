#!/usr/bin/env bash
# People benchmark (a measurement, not a test): sign-ins per second through the hosted
# sign-in page (authorize, page, password, code: bound by argon2id), next to the machine's
# raw argon2id hash rate with the same OWASP parameters; and refresh-token grants per second
# with rotation (a database write each), next to Keycloak's published 120 refreshes/s per
# vCPU. On SQLite and on PostgreSQL. Prints a markdown table and saves it to
# bench/results/people-<date>.md.
#
#   bash bench/people.sh                          # full run: 10 s per measurement
#   DUR=2 bash bench/people.sh                    # smoke run (figures mean nothing)
#
# Knobs (environment):
#   DUR=10           seconds per measurement
#   CONC_SIGNIN=8    concurrent sign-ins in flight (each its own browser: cookie jar, PKCE)
#   CONC_REFRESH=32  concurrent refresh-token families
#   PC_PORT=8185     port of Portcullis (loopback)
#   PG_URL           PostgreSQL to use (default postgres://postgres@127.0.0.1:5432/test; a
#                    fresh schema is made and dropped); PG=0 skips PostgreSQL
#   PORTCULLIS_LOG   log filter of `serve` (default warn: no access log)
#   KEEP_TMP=1       keep the temporary data dirs and logs
# The load generator (crates/portcullis/examples/people_bench.rs, release build) shares the
# cores with the server, as wrk does in the other benchmarks.
set -euo pipefail

ROOT=$(git -C "$(dirname "$(readlink -f "$0")")" rev-parse --show-toplevel)
DUR=${DUR:-10}
CONC_SIGNIN=${CONC_SIGNIN:-8}
CONC_REFRESH=${CONC_REFRESH:-32}
PC_PORT=${PC_PORT:-8185}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
export PORTCULLIS_LOG=${PORTCULLIS_LOG:-warn}
PASSWORD=bench-people-password-0417
USERS=$(for i in $(seq 1 32); do printf 'user%02d@bench.example,' "$i"; done); USERS=${USERS%,}

log() { printf '\n== %s\n' "$*" >&2; }
die() { echo "people-bench: $*" >&2; exit 1; }

PC_PID= TMP= OK=0 SCHEMA=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$PC_PID" ] && kill -0 "$PC_PID" 2>/dev/null; then kill "$PC_PID" 2>/dev/null || true; wait "$PC_PID" 2>/dev/null || true; fi
  if [ -n "$SCHEMA" ]; then psql -q "$PG_URL" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true; fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "$OK" = 1 ] && [ "${KEEP_TMP:-0}" != 1 ]; then rm -rf "$TMP"; else echo "temporary files kept in $TMP" >&2; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building the release binary and the load generator"
(cd "$ROOT" && cargo build --release -p portcullis --bin portcullis --example people_bench >&2)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/portcullis
GEN=$TARGET_DIR/release/examples/people_bench
TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-people-bench.XXXXXX")

# The org: one server, a public client with PKCE, 32 users with one password; sign-in
# limits raised so the load generator is not rate limited.
{
  cat <<'YAML'
version: 1
signIn:
  attemptsPerMinutePerLogin: 1000000
  attemptsPerMinutePerIp: 1000000
groups:
  - name: staff
authorizationServers:
  - id: bench
    name: bench
    audiences: [api://bench]
    scopes:
      - name: read:things
        default: true
    claims:
      - name: department_id
        value: user.profile.department
    policies:
      - name: app
        priority: 1
        clients: [bench-app]
        rules:
          - name: people
            priority: 1
            grantTypes: [authorization_code, refresh_token]
            scopes: "*"
clients:
  - clientId: bench-app
    name: bench app
    type: spa
    grantTypes: [authorization_code, refresh_token]
    tokenEndpointAuthMethod: none
    redirectUris: [http://127.0.0.1:3000/callback]
users:
YAML
  IFS=, read -ra logins <<<"$USERS"
  for u in "${logins[@]}"; do
    printf '  - login: %s\n    profile: {department: sales}\n    groups: [staff]\n    passwordEnv: BENCH_PASSWORD\n' "$u"
  done
} > "$TMP/org.yaml"

measure() { # NAME DATABASE_URL -> appends JSON lines to $TMP/results.jsonl
  local name=$1 db=$2 dir=$TMP/$1
  mkdir -p "$dir/data"
  printf 'version: 1\ndataDir: %s\nidp:\n  listen: 127.0.0.1:%s\n' "$dir/data" "$PC_PORT" > "$dir/config.yaml"
  [ -n "$db" ] && printf 'databaseUrl: "%s"\n' "$db" >> "$dir/config.yaml"
  log "$name: applying the bench org (32 users: 32 argon2id hashes)"
  BENCH_PASSWORD=$PASSWORD "$BIN" apply -f "$TMP/org.yaml" --config "$dir/config.yaml" >/dev/null
  "$BIN" serve --config "$dir/config.yaml" 2> "$dir/serve.log" &
  PC_PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PC_PORT/health" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$PC_PORT/health" || die "$name: the server did not start (log: $dir/serve.log)"
  local iss=http://127.0.0.1:$PC_PORT/oauth2/bench cb=http://127.0.0.1:3000/callback
  log "$name: sign-ins, $CONC_SIGNIN concurrent, ${DUR}s"
  "$GEN" signin "$iss" bench-app "$cb" "$PASSWORD" "$USERS" "$DUR" "$CONC_SIGNIN" | sed "s/^{/{\"db\":\"$name\",/" >> "$TMP/results.jsonl"
  for scope in "offline_access read:things" "openid offline_access read:things"; do
    log "$name: refresh grants ($scope), $CONC_REFRESH families, ${DUR}s"
    "$GEN" refresh "$iss" bench-app "$cb" "$PASSWORD" "$USERS" "$DUR" "$CONC_REFRESH" "$scope" | sed "s/^{/{\"db\":\"$name\",/" >> "$TMP/results.jsonl"
  done
  kill "$PC_PID"; wait "$PC_PID" 2>/dev/null || true; PC_PID=
}

log "raw argon2id (m=19 MiB, t=2, p=1) on every core, ${DUR}s"
"$GEN" argon2 "$DUR" > "$TMP/results.jsonl"
measure sqlite ""
if [ "${PG:-1}" != 0 ]; then
  SCHEMA=pc_people_bench_$$
  psql -q "$PG_URL" -c "CREATE SCHEMA $SCHEMA" >/dev/null || die "cannot reach PostgreSQL at $PG_URL (PG=0 skips it)"
  sep='?'; [[ "$PG_URL" == *\?* ]] && sep='&'
  measure postgres "$PG_URL${sep}options=-c%20search_path%3D$SCHEMA"
fi

STAMP=$(date +%Y-%m-%d_%H%M%S)
mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/people-$STAMP$([ "$DUR" -lt 10 ] && echo -smoke || true).md
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo "+dirty")
RESULTS=$TMP/results.jsonl DUR=$DUR COMMIT=$COMMIT STAMP=$STAMP CS=$CONC_SIGNIN CR=$CONC_REFRESH python3 - > "$OUT" <<'PY'
import json, os, subprocess
e = os.environ
rows = [json.loads(l) for l in open(e["RESULTS"]) if l.strip()]
argon = next(r for r in rows if r["mode"] == "argon2")
nproc = int(subprocess.getoutput("nproc"))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# People: sign-ins and refresh grants per second ({e['STAMP']})\n")
if int(e["DUR"]) < 10:
    print(f"**SMOKE RUN (DUR={e['DUR']} s): proves the script works; not a measurement.**\n")
print(f"commit {e['COMMIT']}, `portcullis serve` (release, PORTCULLIS_LOG=warn) on loopback; load generator "
      f"`examples/people_bench.rs` on the same {nproc} cores ({cpu}); {e['DUR']} s per row.\n")
print(f"Raw argon2id (m=19456 KiB, t=2, p=1, the OWASP parameters the server uses), {argon['threads']} threads: "
      f"**{argon['per_second']:.1f} hashes/s** ({argon['ms_per_hash_per_core']:.1f} ms per hash per core).\n")
print("| database | what | concurrency | per second | errors | ratio |")
print("|---|---|---|---|---|---|")
keycloak = 120 * nproc
for r in rows:
    if r["mode"] == "signin":
        ratio = f"{r['per_second'] / argon['per_second']:.2f} of the raw hash rate"
        what = "sign-in (authorize, page, password, code)"
    elif r["mode"] == "refresh":
        ratio = f"{r['per_second'] / keycloak:.1f}x Keycloak's published 120/s per vCPU ({keycloak}/s on {nproc})"
        what = f"refresh grant with rotation, scope `{r['scope']}`"
    else:
        continue
    print(f"| {r['db']} | {what} | {r['concurrency']} | {r['per_second']:.0f} | {r['errors']} | {ratio} |")
errs = [r for r in rows if r.get("errors")]
if errs:
    print("\n**WARNING: some requests failed; first errors:** " + "; ".join(f"{r['db']} {r['mode']}: {r['first_error']}" for r in errs))
PY
OK=1
cat "$OUT"
echo
echo "saved to ${OUT#"$ROOT"/}"
