#!/usr/bin/env bash
# soak.sh: a soak test of "agora serve" under sustained load. Not run in CI.
#
#   bench/soak.sh                    # 10 minutes, 256 connections, 2 wrk threads
#   DURATION=60 bench/soak.sh        # a quick check that the harness works
#
# It installs wrk if missing (apt-get), builds agora and bench/genstore,
# generates a store of MODULES x VERSIONS module versions, starts agora on
# 127.0.0.1 with --upstream off --sumdb off (serving only what the store
# holds, so no network is involved), and runs wrk for DURATION seconds with
# bench/soak.lua, which requests a random mix of .info, .mod, .zip and
# @v/list paths and counts every answer that is not 200.
#
# While wrk runs, agora's RSS (VmRSS), open file descriptors, goroutines (from
# the pprof listener's goroutine profile), Go heap in use and CPU time are
# sampled every SAMPLE_EVERY seconds into samples.csv; once before the load
# (the baseline) and once SETTLE seconds after wrk ends. The summary gives
# wrk's totals and the first/last/max of each series, and a verdict:
#
#   errors:     no non-200 answer and no socket error (connect, read, write,
#               timeout) reported by wrk
#   memory:     RSS at the last sample under load <= RSS_FACTOR (1.2) x RSS at
#               the first sample after the warm-up (WARMUP seconds)
#   fds:        open fds SETTLE seconds after the load <= baseline + FD_SLACK
#   goroutines: goroutines SETTLE seconds after the load <= baseline + GOROUTINE_SLACK
#
# It exits 0 when all four hold, 1 otherwise. All traffic goes to 127.0.0.1.
# Everything it starts is stopped on exit. Results (samples.csv, wrk.txt,
# agora.log, summary.txt, and goroutine/heap profiles taken at the end of the
# load and after it) are kept in OUT (a new directory under /tmp by default);
# the generated store is removed unless KEEP_STORE=1.
#
# Settings (environment):
#   DURATION=600 CONNECTIONS=256 THREADS=2 TIMEOUT=5 (wrk's per-request timeout, s)
#   MODULES=1000 VERSIONS=3 ZIPSIZE=16384 (the generated store)
#   MIX=30,30,30,10 (percentages of info,mod,zip,list requests)
#   PORT=38080 PPROF_PORT=38081 SAMPLE_EVERY=10 SETTLE=5
#   WARMUP (default DURATION/10, at least SAMPLE_EVERY) RSS_FACTOR=1.2
#   FD_SLACK=2 GOROUTINE_SLACK=2 OUT=<dir> KEEP_STORE=0 AGORA_FLAGS (extra flags)
#   AGORA_REV: build agora from this git revision (git archive into OUT/src)
#     instead of the work tree, e.g. AGORA_REV=HEAD while the tree is being edited
set -euo pipefail

DURATION=${DURATION:-600}
CONNECTIONS=${CONNECTIONS:-256}
THREADS=${THREADS:-2}
TIMEOUT=${TIMEOUT:-5}
MODULES=${MODULES:-1000}
VERSIONS=${VERSIONS:-3}
ZIPSIZE=${ZIPSIZE:-16384}
MIX=${MIX:-30,30,30,10}
PORT=${PORT:-38080}
PPROF_PORT=${PPROF_PORT:-38081}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
SETTLE=${SETTLE:-5}
WARMUP=${WARMUP:-$(( DURATION / 10 > SAMPLE_EVERY ? DURATION / 10 : SAMPLE_EVERY ))}
RSS_FACTOR=${RSS_FACTOR:-1.2}
FD_SLACK=${FD_SLACK:-2}
GOROUTINE_SLACK=${GOROUTINE_SLACK:-2}
KEEP_STORE=${KEEP_STORE:-0}
AGORA_FLAGS=${AGORA_FLAGS:-}
AGORA_REV=${AGORA_REV:-}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/agora-soak.XXXXXX)}
mkdir -p "$OUT"
store=$OUT/store
base=http://127.0.0.1:$PORT
pprof=http://127.0.0.1:$PPROF_PORT/debug/pprof

log() { printf 'soak: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

agora_pid=''
wrk_pid=''
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $wrk_pid ]] && kill -0 "$wrk_pid" 2>/dev/null; then
		kill "$wrk_pid" 2>/dev/null || true
		wait "$wrk_pid" 2>/dev/null || true
	fi
	if [[ -n $agora_pid ]] && kill -0 "$agora_pid" 2>/dev/null; then
		kill -TERM "$agora_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$agora_pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$agora_pid" 2>/dev/null || true
		wait "$agora_pid" 2>/dev/null || true
	fi
	if [[ $KEEP_STORE != 1 ]]; then rm -rf "$store"; fi
	log "results in $OUT"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port in use would make the numbers someone else's.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_free "$PORT" || die "port $PORT is in use (set PORT)"
port_free "$PPROF_PORT" || die "port $PPROF_PORT is in use (set PPROF_PORT)"

if ! command -v wrk >/dev/null; then
	log "installing wrk"
	DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >"$OUT/apt.log" 2>&1 ||
		{ apt-get update >>"$OUT/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >>"$OUT/apt.log" 2>&1; } ||
		die "could not install wrk (see $OUT/apt.log)"
fi
command -v curl >/dev/null || die "curl is needed"

src=$root
if [[ -n $AGORA_REV ]]; then
	src=$OUT/src
	rm -rf "$src" && mkdir -p "$src"
	git -C "$root" archive "$AGORA_REV" | tar -x -C "$src"
	source_desc="git $(git -C "$root" rev-parse --short "$AGORA_REV") ($AGORA_REV)"
else
	source_desc="work tree $root"
	if rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null); then
		source_desc+=" at $rev"
		[[ -z $(git -C "$root" status --porcelain -- cmd internal go.mod go.sum 2>/dev/null) ]] || source_desc+=" with uncommitted changes"
	fi
fi
log "building agora ($source_desc) and genstore"
(cd "$src" && go build -o "$OUT/agora" ./cmd/agora)
(cd "$root" && go build -o "$OUT/genstore" ./bench/genstore)

log "generating $MODULES x $VERSIONS versions (zips ~$ZIPSIZE bytes)"
"$OUT/genstore" -dir "$store" -modules "$MODULES" -versions "$VERSIONS" -zipsize "$ZIPSIZE" 2>"$OUT/genstore.log" ||
	die "genstore failed: $(tail -3 "$OUT/genstore.log")"
urls=$store/urls.txt

# shellcheck disable=SC2086 # AGORA_FLAGS is a list of flags
"$OUT/agora" serve --listen "127.0.0.1:$PORT" --data-dir "$store" --upstream off --sumdb off \
	--pprof-listen "127.0.0.1:$PPROF_PORT" --log-level warn $AGORA_FLAGS >"$OUT/agora.log" 2>&1 &
agora_pid=$!
for _ in $(seq 100); do
	curl -fs -o /dev/null --max-time 1 "$base/healthz" && break
	kill -0 "$agora_pid" 2>/dev/null || die "agora exited: $(tail -5 "$OUT/agora.log")"
	sleep 0.1
done
curl -fs -o /dev/null --max-time 1 "$base/healthz" || die "agora did not answer on $base"
first=$(sed -n 3p "$urls")
curl -fs -o /dev/null --max-time 5 "$base$first" || die "agora does not serve $first"
log "agora pid $agora_pid on $base, pprof on 127.0.0.1:$PPROF_PORT"

clk=$(getconf CLK_TCK)
csv=$OUT/samples.csv
echo "t_s,phase,rss_kb,fds,goroutines,heap_inuse_kb,cpu_s,load1" >"$csv"
t0=$(date +%s)
sample() { # phase
	local rss fds gor heap cpu
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$agora_pid/status")
	fds=$(find "/proc/$agora_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
	gor=$(curl -fs --max-time 5 "$pprof/goroutine?debug=1" | sed -n '1s/^goroutine profile: total //p') || gor=
	heap=$(curl -fs --max-time 5 "$pprof/heap?debug=1" | sed -n 's/^# HeapInuse = //p') || heap=
	cpu=$(awk -v hz="$clk" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$agora_pid/stat")
	echo "$(($(date +%s) - t0)),$1,$rss,$fds,${gor:-NA},$((${heap:-0} / 1024)),$cpu,$(cut -d' ' -f1 /proc/loadavg)" >>"$csv"
}

sample baseline
log "running wrk: ${DURATION}s, $CONNECTIONS connections, $THREADS threads, mix info,mod,zip,list = $MIX"
t0=$(date +%s)
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout "${TIMEOUT}s" --latency \
	-s "$root/bench/soak.lua" "$base" -- "$urls" "$MIX" >"$OUT/wrk.txt" 2>&1 &
wrk_pid=$!
# Sample until wrk ends; bounded in case wrk does not stop by itself.
deadline=$((t0 + DURATION + 60))
next=$((t0 + SAMPLE_EVERY))
while kill -0 "$wrk_pid" 2>/dev/null; do
	now=$(date +%s)
	if ((now >= deadline)); then
		log "wrk still running ${DURATION}s+60s after start; stopping it"
		kill "$wrk_pid" 2>/dev/null || true
		break
	fi
	kill -0 "$agora_pid" 2>/dev/null || die "agora died under load: $(tail -5 "$OUT/agora.log")"
	if ((now >= next)); then
		sample load
		# Profiles near the end of the load, for a look if something grew.
		if ((now + SAMPLE_EVERY >= t0 + DURATION)) && [[ ! -e $OUT/goroutine-load.txt ]]; then
			curl -fs --max-time 10 "$pprof/goroutine?debug=1" >"$OUT/goroutine-load.txt" || true
			curl -fs --max-time 10 "$pprof/heap" >"$OUT/heap-load.pb.gz" || true
		fi
		next=$((next + SAMPLE_EVERY))
	fi
	sleep 1
done
wrk_rc=0
wait "$wrk_pid" || wrk_rc=$?
wrk_pid=
kill -0 "$agora_pid" 2>/dev/null || die "agora died under load: $(tail -5 "$OUT/agora.log")"
sleep "$SETTLE"
sample after
curl -fs --max-time 10 "$pprof/goroutine?debug=1" >"$OUT/goroutine-after.txt" || true
curl -fs --max-time 10 "$pprof/heap" >"$OUT/heap-after.pb.gz" || true

result=$(grep '^SOAK_RESULT ' "$OUT/wrk.txt" || true)
[[ -n $result ]] || die "wrk printed no result (exit $wrk_rc): $(tail -5 "$OUT/wrk.txt")"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$result"; }

# The series' first/last/max under load, the baseline and the after sample.
stats() { # column
	awk -F, -v c="$1" -v w="$WARMUP" '
		NR == 1 { next }
		$2 == "baseline" { b = $c }
		$2 == "after" { a = $c }
		$2 == "load" { if (f == "") f = $c; l = $c; if ($c + 0 > m + 0) m = $c; if ($1 >= w && fw == "") fw = $c }
		END { printf "%s %s %s %s %s %s\n", b, f, l, m, a, fw }' "$csv"
}
read -r rss_b rss_f rss_l rss_m rss_a rss_w <<<"$(stats 3)"
read -r fd_b fd_f fd_l fd_m fd_a _ <<<"$(stats 4)"
read -r go_b go_f go_l go_m go_a _ <<<"$(stats 5)"
read -r hp_b hp_f hp_l hp_m hp_a hp_w <<<"$(stats 6)"
[[ -n $rss_l ]] || die "no sample was taken under load (DURATION < SAMPLE_EVERY?)"
rss_w=${rss_w:-$rss_l}
hp_w=${hp_w:-$hp_l}

errors=$(($(field non200) + $(field connect) + $(field read) + $(field write) + $(field timeout)))
verdict=PASS
why=()
((errors == 0)) || { verdict=FAIL; why+=("errors=$errors"); }
awk -v l="$rss_l" -v w="$rss_w" -v f="$RSS_FACTOR" 'BEGIN { exit !(l <= f * w) }' ||
	{ verdict=FAIL; why+=("rss grew: $rss_l kB > $RSS_FACTOR x $rss_w kB"); }
((fd_a <= fd_b + FD_SLACK)) || { verdict=FAIL; why+=("fds after load $fd_a > baseline $fd_b + $FD_SLACK"); }
if [[ $go_a == NA || $go_b == NA ]] || ((go_a > go_b + GOROUTINE_SLACK)); then
	verdict=FAIL
	why+=("goroutines after load $go_a > baseline $go_b + $GOROUTINE_SLACK")
fi
# Not counting the two notices that --upstream off and --sumdb off log at start.
warnings=$(grep 'level=WARN\|level=ERROR' "$OUT/agora.log" | grep -vc 'no upstream proxy\|no checksum database' || true)

{
	echo "agora: $source_desc"
	echo "agora soak: ${DURATION}s, $CONNECTIONS connections, $THREADS wrk threads, $MODULES modules x $VERSIONS versions, zips ~$ZIPSIZE B, mix info,mod,zip,list = $MIX"
	echo
	printf '| %-28s | %-26s |\n' "wrk" "value"
	printf '|%s|%s|\n' "$(printf -- '-%.0s' {1..30})" "$(printf -- '-%.0s' {1..28})"
	printf '| %-28s | %-26s |\n' "requests" "$(field requests)" \
		"duration (s)" "$(field duration_s)" \
		"requests/s" "$(field rps)" \
		"MiB read" "$(awk -v b="$(field bytes)" 'BEGIN { printf "%.0f", b / 1048576 }')" \
		"non-200 answers" "$(field non200)" \
		"non-2xx answers" "$(field non2xx)" \
		"socket errors c/r/w/timeout" "$(field connect)/$(field read)/$(field write)/$(field timeout)" \
		"latency p50 / p99 / max (ms)" "$(field p50_ms) / $(field p99_ms) / $(field max_ms)"
	echo
	printf '| %-19s | %9s | %9s | %9s | %9s | %9s | %9s |\n' "agora" "baseline" "first" "warm-up" "last" "max" "after ${SETTLE}s"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..21})" "-----------" "-----------" "-----------" "-----------" "-----------" "-----------"
	printf '| %-19s | %9s | %9s | %9s | %9s | %9s | %9s |\n' \
		"RSS (kB)" "$rss_b" "$rss_f" "$rss_w" "$rss_l" "$rss_m" "$rss_a" \
		"Go heap in use (kB)" "$hp_b" "$hp_f" "$hp_w" "$hp_l" "$hp_m" "$hp_a" \
		"open fds" "$fd_b" "$fd_f" "-" "$fd_l" "$fd_m" "$fd_a" \
		"goroutines" "$go_b" "$go_f" "-" "$go_l" "$go_m" "$go_a"
	echo
	echo "(first/last/max are over the samples taken every ${SAMPLE_EVERY}s under load; warm-up is the first sample at t >= ${WARMUP}s)"
	echo "agora warnings/errors logged (besides the start-up notices): $warnings; non-200 statuses: $(grep '^SOAK_STATUS' "$OUT/wrk.txt" | cut -d' ' -f2- | tr '\n' ';' || true)"
	if [[ $verdict == PASS ]]; then
		echo "VERDICT: PASS (errors 0; RSS last $rss_l kB <= $RSS_FACTOR x $rss_w kB; fds $fd_a vs baseline $fd_b; goroutines $go_a vs baseline $go_b)"
	else
		echo "VERDICT: FAIL (${why[*]})"
	fi
} | tee "$OUT/summary.txt"
[[ $verdict == PASS ]]
