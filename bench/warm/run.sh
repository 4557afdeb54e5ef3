#!/usr/bin/env bash
# run.sh: the "warm serving" benchmark. Everything is cached; Agora is
# compared with nginx serving the same files from disk (page cache), the
# physical-limit baseline, in one run, interleaved. Not run in CI.
#
#   bench/warm/run.sh                          # ~17 minutes with the defaults
#   DURATION=3 ROUNDS=1 PROFILE=0 bench/warm/run.sh   # a quick check of the harness
#
# It installs nginx and wrk if missing (apt-get), builds agora (from the work
# tree, or from AGORA_REV via git archive) and bench/genstore, and generates
# one store: MODULES x VERSIONS small versions plus one 1 MiB and one 34 MiB
# zip (genstore -big, run twice with different -prefix since -big takes one
# size). Then it starts, all on 127.0.0.1:
#
#   nginx-on   nginx (worker_processes 2, access_log off, sendfile on) with
#              root = <store>/mod, so request paths map to the files Agora serves
#   nginx-off  the same with sendfile off (nginx reads into its output_buffers)
#   agora      agora serve --upstream off --sumdb off --log-level warn
#              (request logs are info-level, so none are written)
#
# (nginx.conf.tmpl is the config; it sends Agora's content types and its
# Cache-Control header, and lifts keepalive_requests so that nginx does not
# close wrk's keep-alive connections every 1000 requests, which Go does not.)
#
# After a warm-up (every store file read once, and a short wrk run per server
# and workload, which also fills Agora's in-memory .info/.mod cache), it runs
# wrk -tTHREADS for DURATION seconds per cell, where a cell is a workload at a
# number of connections:
#
#   info    random .info paths over every generated version (paths.lua)
#   mod     random .mod paths over every generated version
#   zip1m   the 1 MiB zip
#   zip34m  the 34 MiB zip
#
# at each of CONNS (64 and 256), plus zip34m at MEM_CONNS (100: the issue's
# memory goal is peak RSS while 100 clients download a 34 MiB zip). Within a
# cell the servers run one after another (nginx-on, nginx-off, agora) and the
# whole sequence is repeated ROUNDS times; the table gives the median over the
# rounds. During every run the servers' CPU time and peak memory are sampled
# (VmRSS and Pss from /proc every 0.25 s: agora's process, the sum of the
# nginx instance's worker processes, the master not counted).
#
# Finally (PROFILE=1) a CPU profile of agora is taken during an extra,
# unmeasured info run at PROFILE_CONNS connections (pprof listener's
# /debug/pprof/profile?seconds=PROFILE_SECONDS), and its top 15 functions
# are written to OUT/profile-top.txt.
#
# The load generator shares the machine's cores with the server it loads:
# compare ratios within one run, not absolute numbers across machines.
#
# Output (in OUT, a new directory under /tmp by default): summary.md (the
# tables), results.tsv (every run), wrk/*.txt, agora.log, nginx-*/error.log,
# the profile. The store is removed on exit unless KEEP_STORE=1. Everything
# started is stopped on exit.
#
# Settings (environment):
#   DURATION=15 ROUNDS=2 THREADS=2 CONNS="64 256" MEM_CONNS=100
#   WORKLOADS="info mod zip1m zip34m" TIMEOUT=60 (wrk's per-request timeout, s)
#   WARMUP=3 (seconds of wrk per server and workload before the rounds) GAP=1 (s between runs)
#   MODULES=2000 VERSIONS=2 ZIPSIZE=16KiB (the small versions)
#   PORT_ON=38180 PORT_OFF=38181 PORT_AGORA=38182 PPROF_PORT=38183
#   OPEN_FILE_CACHE=1 (nginx open_file_cache for the baselines; 0 leaves it off)
#   PROFILE=1 PROFILE_CONNS=256 PROFILE_SECONDS=10
#   OUT=<dir> KEEP_STORE=0 AGORA_FLAGS (extra flags for agora serve)
#   AGORA_REV: build agora from this git revision (git archive into OUT/src)
#     instead of the work tree, e.g. AGORA_REV=HEAD while the tree is being edited
set -euo pipefail

DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64 256}
MEM_CONNS=${MEM_CONNS:-100}
WORKLOADS=${WORKLOADS:-info mod zip1m zip34m}
TIMEOUT=${TIMEOUT:-60}
WARMUP=${WARMUP:-3}
GAP=${GAP:-1}
MODULES=${MODULES:-2000}
VERSIONS=${VERSIONS:-2}
ZIPSIZE=${ZIPSIZE:-16KiB}
PORT_ON=${PORT_ON:-38180}
PORT_OFF=${PORT_OFF:-38181}
PORT_AGORA=${PORT_AGORA:-38182}
PPROF_PORT=${PPROF_PORT:-38183}
OPEN_FILE_CACHE=${OPEN_FILE_CACHE:-1}
PROFILE=${PROFILE:-1}
PROFILE_CONNS=${PROFILE_CONNS:-256}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
KEEP_STORE=${KEEP_STORE:-0}
AGORA_FLAGS=${AGORA_FLAGS:-}
AGORA_REV=${AGORA_REV:-}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/agora-warm.XXXXXX)}
mkdir -p "$OUT" "$OUT/wrk"
OUT=$(cd "$OUT" && pwd)
store=$OUT/store
servers=(nginx-on nginx-off agora)

log() { printf 'warm: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

declare -A port=([nginx-on]=$PORT_ON [nginx-off]=$PORT_OFF [agora]=$PORT_AGORA)
declare -A pid=()
sampler_pid=''
prof_wrk=''
stop_pid() { # pid signal
	local p=$1
	[[ -n $p ]] && kill -0 "$p" 2>/dev/null || return 0
	kill "-$2" "$p" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$sampler_pid" TERM
	# wrk runs in command substitutions and background subshells: its pid is in a file.
	if [[ -s $OUT/wrk.pid ]]; then
		wp=$(cat "$OUT/wrk.pid")
		if kill -0 "$wp" 2>/dev/null; then kill -TERM "$wp" 2>/dev/null || true; sleep 0.5; kill -KILL "$wp" 2>/dev/null || true; fi
	fi
	if [[ -n $prof_wrk ]]; then wait "$prof_wrk" 2>/dev/null || true; fi
	# nginx's master stops its workers on TERM; agora shuts down on TERM.
	for s in "${servers[@]}"; do stop_pid "${pid[$s]:-}" TERM; done
	if [[ $KEEP_STORE != 1 ]]; then rm -rf "$store"; fi
	rm -rf "$OUT/src"
	log "results in $OUT"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT_ON" "$PORT_OFF" "$PORT_AGORA" "$PPROF_PORT"; do
	port_free "$p" || die "port $p is in use (set PORT_ON, PORT_OFF, PORT_AGORA, PPROF_PORT)"
done

# Tools.
apt_install() { # package...
	log "installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$OUT/apt.log" 2>&1 ||
		{ apt-get update >>"$OUT/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$OUT/apt.log" 2>&1; } ||
		die "could not install $* (see $OUT/apt.log)"
}
command -v wrk >/dev/null || apt_install wrk
if ! command -v nginx >/dev/null; then
	# Installing nginx would start Debian's default site on 0.0.0.0:80; a
	# policy-rc.d that forbids starting services prevents that.
	made_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
	fi
	apt_install nginx
	if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; fi
fi
for t in curl go ps; do command -v "$t" >/dev/null || die "$t is needed"; done

# Agora and genstore.
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

# The store: small versions and the 1 MiB zip, then the 34 MiB zip under
# another prefix (genstore's -big makes N zips of one size).
log "generating $MODULES x $VERSIONS versions (zips ~$ZIPSIZE), a 1 MiB and a 34 MiB zip"
"$OUT/genstore" -dir "$store" -modules "$MODULES" -versions "$VERSIONS" -zipsize "$ZIPSIZE" -big 1:1MiB \
	2>"$OUT/genstore.log" || die "genstore failed: $(tail -3 "$OUT/genstore.log")"
mkdir -p "$OUT/gen34"
"$OUT/genstore" -dir "$store" -modules 0 -big 1:34MiB -prefix example.com/gen34 -urls "$OUT/gen34/urls.txt" \
	2>>"$OUT/genstore.log" || die "genstore failed: $(tail -3 "$OUT/genstore.log")"
paths=$OUT/paths
mkdir -p "$paths"
grep '\.info$' "$store/urls.txt" >"$paths/info.txt"
grep '\.mod$' "$store/urls.txt" >"$paths/mod.txt"
head -1 "$store/urls-big.txt" >"$paths/zip1m.txt"
head -1 "$OUT/gen34/urls-big.txt" >"$paths/zip34m.txt"
for w in info mod zip1m zip34m; do [[ -s $paths/$w.txt ]] || die "no $w paths"; done
size1m=$(stat -c %s "$store/mod$(cat "$paths/zip1m.txt")")
size34m=$(stat -c %s "$store/mod$(cat "$paths/zip34m.txt")")
declare -A wname=([info]=".info ($(wc -l <"$paths/info.txt") paths)" [mod]=".mod ($(wc -l <"$paths/mod.txt") paths)"
	[zip1m]="zip 1 MiB" [zip34m]="zip 34 MiB")
# nginx's workers may run as another user: let them read the store.
chmod 755 "$OUT"

# The servers.
start_nginx() { # name sendfile
	local name=$1 dir=$OUT/$1 userline='' ofc=''
	mkdir -p "$dir"
	if ((EUID == 0)); then userline='user root root;'; fi # the same user as agora
	if [[ $OPEN_FILE_CACHE == 1 ]]; then
		ofc='open_file_cache max=20000 inactive=60s; open_file_cache_valid 60s; open_file_cache_min_uses 1;'
	fi
	sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|${port[$name]}|g" -e "s|@ROOT@|$store/mod|g" \
		-e "s|@SENDFILE@|$2|g" -e "s|@USER_LINE@|$userline|g" -e "s|@OPEN_FILE_CACHE@|$ofc|g" \
		"$here/nginx.conf.tmpl" >"$dir/nginx.conf"
	nginx -t -c "$dir/nginx.conf" -p "$dir/" >"$dir/test.log" 2>&1 || die "nginx config: $(cat "$dir/test.log")"
	nginx -c "$dir/nginx.conf" -p "$dir/" -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
	pid[$name]=$!
}
start_nginx nginx-on on
start_nginx nginx-off off
# shellcheck disable=SC2086 # AGORA_FLAGS is a list of flags
"$OUT/agora" serve --listen "127.0.0.1:$PORT_AGORA" --data-dir "$store" --upstream off --sumdb off \
	--pprof-listen "127.0.0.1:$PPROF_PORT" --log-level warn $AGORA_FLAGS >"$OUT/agora.log" 2>&1 &
pid[agora]=$!

probe=$(head -1 "$paths/info.txt")
for s in "${servers[@]}"; do
	for _ in $(seq 100); do
		curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:${port[$s]}$probe" && break
		kill -0 "${pid[$s]}" 2>/dev/null || die "$s exited (see $OUT)"
		sleep 0.1
	done
done
# Every server must answer every kind of path with the stored bytes.
for w in info mod zip1m zip34m; do
	p=$(head -1 "$paths/$w.txt")
	for s in "${servers[@]}"; do
		curl -fs --max-time 30 -D "$OUT/headers-$s-$w.txt" -o "$OUT/body" "http://127.0.0.1:${port[$s]}$p" ||
			die "$s does not serve $p"
		cmp -s "$OUT/body" "$store/mod$p" || die "$s serves other bytes than $store/mod$p"
	done
done
rm -f "$OUT/body"
# The nginx worker processes of each instance (children of the master).
declare -A procs=([agora]=${pid[agora]})
for s in nginx-on nginx-off; do
	procs[$s]=$(ps -o pid= --ppid "${pid[$s]}" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
	[[ -n ${procs[$s]} ]] || die "no nginx workers for $s"
done
log "nginx-on :$PORT_ON (workers ${procs[nginx-on]}), nginx-off :$PORT_OFF (workers ${procs[nginx-off]}), agora :$PORT_AGORA (pid ${pid[agora]})"

clk=$(getconf CLK_TCK)
cpu_ticks() { # pid... -> utime+stime of all, in ticks
	local t=0 p f
	for p in "$@"; do
		f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		f=${f##*) } # fields from the 3rd on (the name may hold spaces)
		# shellcheck disable=SC2086
		set -- $f
		t=$((t + ${12} + ${13}))
	done
	echo "$t"
}
# Peak of the summed VmRSS and Pss (kB) of the pids, rewritten to $1 every 0.25 s.
sample_mem() { # outfile pid...
	local out=$1 peak=0 peakpss=0 rss pss k v _
	shift
	while :; do
		rss=0 pss=0
		for p in "$@"; do
			{ while read -r k v _; do if [[ $k == VmRSS: ]]; then rss=$((rss + v)); break; fi; done <"/proc/$p/status"; } 2>/dev/null || true
			{ while read -r k v _; do if [[ $k == Pss: ]]; then pss=$((pss + v)); break; fi; done <"/proc/$p/smaps_rollup"; } 2>/dev/null || true
		done
		if ((rss > peak)); then peak=$rss; fi
		if ((pss > peakpss)); then peakpss=$pss; fi
		echo "$peak $peakpss" >"$out.tmp" && mv "$out.tmp" "$out"
		sleep 0.25
	done
}

res=$OUT/results.tsv
printf 'round\tserver\tworkload\tconns\trequests\tduration_s\trps\tmib_s\tbytes_per_req\terrors\tp50_ms\tp99_ms\tcpu_s\tcpu_us_per_req\tpeak_rss_kb\tpeak_pss_kb\n' >"$res"

# run_wrk server workload conns seconds tag: runs wrk, prints the WARM_RESULT line's fields.
run_wrk() {
	local s=$1 w=$2 c=$3 secs=$4 tag=$5 f
	f=$OUT/wrk/$tag-$s-$w-c$c.txt
	timeout -k 5 $((secs + TIMEOUT + 30)) wrk -t"$THREADS" -c"$c" -d"${secs}s" --timeout "${TIMEOUT}s" \
		-s "$here/paths.lua" "http://127.0.0.1:${port[$s]}" -- "$paths/$w.txt" >"$f" 2>&1 &
	echo $! >"$OUT/wrk.pid"
	wait $! || true
	kill -0 "${pid[$s]}" 2>/dev/null || die "$s died under load (see $OUT)"
	grep -m1 '^WARM_RESULT ' "$f" || die "wrk printed no result: $(tail -3 "$f")"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

measure() { # round server workload conns
	local r=$1 s=$2 w=$3 c=$4 line t0 t1 mem=$OUT/mem.$$ rss pss
	rm -f "$mem"
	# shellcheck disable=SC2086 # procs is a list of pids
	sample_mem "$mem" ${procs[$s]} &
	sampler_pid=$!
	# shellcheck disable=SC2086
	t0=$(cpu_ticks ${procs[$s]})
	line=$(run_wrk "$s" "$w" "$c" "$DURATION" "r$r")
	# shellcheck disable=SC2086
	t1=$(cpu_ticks ${procs[$s]})
	stop_pid "$sampler_pid" TERM
	sampler_pid=''
	read -r rss pss <"$mem" || { rss=NA pss=NA; }
	rm -f "$mem"
	awk -v r="$r" -v s="$s" -v w="$w" -v c="$c" -v cpu="$((t1 - t0))" -v hz="$clk" -v rss="$rss" -v pss="$pss" \
		-v n="$(field requests "$line")" -v us="$(field duration_us "$line")" -v b="$(field bytes "$line")" \
		-v e="$(($(field connect "$line") + $(field read "$line") + $(field write "$line") + $(field timeout "$line") + $(field status "$line")))" \
		-v p50="$(field p50_us "$line")" -v p99="$(field p99_us "$line")" 'BEGIN {
		d = us / 1e6; cs = cpu / hz
		printf "%d\t%s\t%s\t%d\t%d\t%.3f\t%.1f\t%.1f\t%.0f\t%d\t%.2f\t%.2f\t%.2f\t%.1f\t%s\t%s\n",
			r, s, w, c, n, d, n / d, b / d / 1048576, (n ? b / n : 0), e, p50 / 1000, p99 / 1000, cs, (n ? cs * 1e6 / n : 0), rss, pss
	}' | tee -a "$res" | awk -F'\t' '{ printf "warm: round %s %-9s %-6s c=%-3s %9.1f req/s %8.1f MiB/s errors %s cpu %.1fs rss %s kB\n", $1, $2, $3, $4, $7, $8, $10, $13, $15 }' >&2
}

# The cells: every workload at every CONNS, and zip34m at MEM_CONNS.
cells=()
for w in $WORKLOADS; do
	for c in $CONNS; do cells+=("$w:$c"); done
	if [[ $w == zip34m && -n $MEM_CONNS && " $CONNS " != *" $MEM_CONNS "* ]]; then cells+=("$w:$MEM_CONNS"); fi
done
runs=$((${#cells[@]} * ${#servers[@]} * ROUNDS))
log "${#cells[@]} cells x ${#servers[@]} servers x $ROUNDS rounds = $runs runs of ${DURATION}s (~$(((runs * (DURATION + GAP) + 12 * WARMUP + 30) / 60)) min)"

# Warm-up: the page cache, Agora's memory cache, both nginx's open file caches.
find "$store/mod" -type f -exec cat {} + >/dev/null
for w in $WORKLOADS; do
	for s in "${servers[@]}"; do run_wrk "$s" "$w" 64 "$WARMUP" warmup >/dev/null; done
done

for r in $(seq "$ROUNDS"); do
	for cell in "${cells[@]}"; do
		for s in "${servers[@]}"; do
			measure "$r" "$s" "${cell%%:*}" "${cell##*:}"
			sleep "$GAP"
		done
	done
done

# The profile: an extra agora run, not in the table.
if [[ $PROFILE == 1 ]]; then
	log "profiling agora: info at $PROFILE_CONNS connections, ${PROFILE_SECONDS}s"
	run_wrk agora info "$PROFILE_CONNS" $((PROFILE_SECONDS + 4)) profile >"$OUT/profile-wrk.txt" &
	prof_wrk=$!
	sleep 2
	curl -fs --max-time $((PROFILE_SECONDS + 20)) -o "$OUT/agora-info-c$PROFILE_CONNS.cpu.pprof" \
		"http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=$PROFILE_SECONDS" || log "could not fetch the profile"
	wait "$prof_wrk" || true
	if [[ -s $OUT/agora-info-c$PROFILE_CONNS.cpu.pprof ]]; then
		go tool pprof -top -nodecount=15 "$OUT/agora" "$OUT/agora-info-c$PROFILE_CONNS.cpu.pprof" >"$OUT/profile-top.txt" 2>&1 || true
	fi
fi

# The summary.
med() { # server workload conns column -> median over the rounds
	awk -F'\t' -v s="$1" -v w="$2" -v c="$3" -v col="$4" 'NR > 1 && $2 == s && $3 == w && $4 == c { print $col }' "$res" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
maxcol() { # server workload conns column -> max over the rounds
	awk -F'\t' -v s="$1" -v w="$2" -v c="$3" -v col="$4" 'NR > 1 && $2 == s && $3 == w && $4 == c && $col != "NA" { if (m == "" || $col + 0 > m + 0) m = $col } END { print (m == "" ? "NA" : m) }' "$res"
}
errsum() { # server workload conns
	awk -F'\t' -v s="$1" -v w="$2" -v c="$3" 'NR > 1 && $2 == s && $3 == w && $4 == c { e += $10 } END { print e + 0 }' "$res"
}
fmt_tp() { # workload rps mibs errors
	local out
	if [[ $1 == zip* ]]; then out=$(awk -v r="$2" -v m="$3" 'BEGIN { printf "%.0f req/s, %.0f MiB/s", r, m }')
	else out=$(awk -v r="$2" 'BEGIN { printf "%.0f req/s", r }'); fi
	if [[ $4 != 0 ]]; then out+=" ($4 errors!)"; fi
	echo "$out"
}
mib() { awk -v k="$1" 'BEGIN { if (k == "NA") print "NA"; else printf "%.1f", k / 1024 }'; }
machine() {
	echo "- machine: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), Linux $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "- $(go version), $(nginx -v 2>&1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
}
{
	echo "### Warm serving run ($(date -u +%Y-%m-%dT%H:%MZ))"
	echo
	echo "- agora: $source_desc"
	machine
	echo "- store: $MODULES modules x $VERSIONS versions (zips ~$ZIPSIZE), plus a 1 MiB zip ($size1m B) and a 34 MiB zip ($size34m B)"
	echo "- wrk -t$THREADS, ${DURATION}s per run, $ROUNDS rounds interleaved (nginx-on, nginx-off, agora per cell), median of the rounds; load generator and servers share the $(nproc) cores"
	echo "- nginx: worker_processes 2, access_log off, open_file_cache $([[ $OPEN_FILE_CACHE == 1 ]] && echo on || echo off); agora: --log-level warn $AGORA_FLAGS"
	echo
	echo "Throughput (median; the ratio is of req/s for .info/.mod and of MiB/s for zips; higher is better):"
	echo
	echo "| workload | conns | nginx sendfile on | nginx sendfile off | agora | agora / best nginx |"
	echo "|---|---:|---:|---:|---:|---:|"
	for cell in "${cells[@]}"; do
		w=${cell%%:*} c=${cell##*:}
		row="| ${wname[$w]} | $c"
		best=0
		for s in "${servers[@]}"; do
			rps=$(med "$s" "$w" "$c" 7) mibs=$(med "$s" "$w" "$c" 8)
			row+=" | $(fmt_tp "$w" "$rps" "$mibs" "$(errsum "$s" "$w" "$c")")"
			# Zips compare MiB/s: wrk's bytes include the downloads still running at
			# the end, its request count does not (256 x 34 MiB is a lot to cut off).
			v=$rps
			if [[ $w == zip* ]]; then v=$mibs; fi
			if [[ $s != agora ]]; then best=$(awk -v a="$best" -v b="$v" 'BEGIN { print (b > a ? b : a) }'); fi
			if [[ $s == agora ]]; then ag=$v; fi
		done
		row+=" | $(awk -v a="$ag" -v b="$best" 'BEGIN { printf (b > 0 ? "%.2fx" : "NA"), a / b }') |"
		echo "$row"
	done
	echo
	echo "Server CPU per request (µs of the server's user+system time, median; lower is better):"
	echo
	echo "| workload | conns | nginx sendfile on | nginx sendfile off | agora | agora / best nginx |"
	echo "|---|---:|---:|---:|---:|---:|"
	for cell in "${cells[@]}"; do
		w=${cell%%:*} c=${cell##*:}
		a=$(med agora "$w" "$c" 14) n1=$(med nginx-on "$w" "$c" 14) n2=$(med nginx-off "$w" "$c" 14)
		echo "| ${wname[$w]} | $c | $n1 | $n2 | $a | $(awk -v a="$a" -v x="$n1" -v y="$n2" 'BEGIN { b = (x < y ? x : y); printf (b > 0 ? "%.2fx" : "NA"), a / b }') |"
	done
	echo
	echo "Peak memory during the 34 MiB zip runs (MiB; max over the rounds; VmRSS, Pss in parentheses; nginx: sum of its 2 workers):"
	echo
	echo "| conns | nginx sendfile on | nginx sendfile off | agora | agora / smaller nginx (RSS) |"
	echo "|---:|---:|---:|---:|---:|"
	for cell in "${cells[@]}"; do
		w=${cell%%:*} c=${cell##*:}
		[[ $w == zip34m ]] || continue
		row="| $c"
		for s in "${servers[@]}"; do row+=" | $(mib "$(maxcol "$s" "$w" "$c" 15)") ($(mib "$(maxcol "$s" "$w" "$c" 16)"))"; done
		row+=" | $(awk -v a="$(maxcol agora "$w" "$c" 15)" -v x="$(maxcol nginx-on "$w" "$c" 15)" -v y="$(maxcol nginx-off "$w" "$c" 15)" \
			'BEGIN { b = (x < y ? x : y); printf (b > 0 ? "%.2fx" : "NA"), a / b }') |"
		echo "$row"
	done
	# Sanity: a zip run must have moved at least one zip per request (wrk's
	# byte count includes the responses still in flight at the end, so more).
	awk -F'\t' -v s1="$size1m" -v s34="$size34m" 'NR > 1 && ($3 == "zip1m" || $3 == "zip34m") {
		want = ($3 == "zip1m" ? s1 : s34)
		if ($5 == 0 || $9 < want) printf "\nWARNING: %s %s c=%s round %s: %d bytes per request, the zip has %d\n", $2, $3, $4, $1, $9, want }' "$res"
	if [[ -s $OUT/profile-top.txt ]]; then
		echo
		echo "CPU profile of agora, .info at $PROFILE_CONNS connections (${PROFILE_SECONDS}s, an extra run):"
		echo
		echo '```'
		sed -n '/^Duration/,$p' "$OUT/profile-top.txt"
		echo '```'
	fi
} >"$OUT/summary.md"
cat "$OUT/summary.md"
