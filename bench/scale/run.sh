#!/usr/bin/env bash
# run.sh: the "scale of the store" benchmark. The same requests against
# two generated stores, one of SMALL versions and one of LARGE (1,000 and
# 1,000,000 by default), served by two Agoras at once; the table gives
# each workload's throughput and latency on both, and the ratio large /
# small: "flat" means a ratio near 1. Not run in CI.
#
#   bench/scale/run.sh                      # ~25 min the first time (generating 1M versions), ~12 min after
#   SMALL=1000 LARGE=100000 bench/scale/run.sh
#
# The stores (bench/genstore: LARGE/VERSIONS modules x VERSIONS versions,
# zips of ZIPSIZE bytes, every version in the SQLite metadata database) are
# kept in STORES and reused by later runs. Workloads, each a wrk run of
# DURATION seconds at CONNS connections, requests picked at random from a
# list of paths (bench/warm/paths.lua):
#
#   info-hot  .info of SAMPLE versions drawn from the whole store: a working
#             set that fits the memory cache at either size
#   info-all  .info of every version: at 1M most are not in memory (the
#             default cache holds 64 MiB), so this reads the disk store
#   info-disk the same against a second pair of Agoras with the memory
#             cache off (--memory-cache-mb 0): every answer is a store read,
#             so this compares the store's lookups at both sizes
#   nginx-disk the same paths from nginx serving each store's mod/ directory
#             (bench/warm's configuration, sendfile on): the file system's
#             own cost of the larger store, the baseline for info-disk
#   list      @v/list of SAMPLE modules (from the metadata database)
#   index     /index?since=<a random time in the first 90% of the time the
#             versions were added over>&limit=100 (SAMPLE such queries: a
#             full page at either size)
#   catalog   /catalog?after=<a random module, not one of the last 10>&limit=10
#             (SAMPLE such: a full page of 10 modules at either size)
#
# Within a round the two stores run one after the other for each workload;
# the round is repeated ROUNDS times and the table shows medians. Agora
# runs with --upstream off --sumdb off --log-level warn, as in bench/warm.
#
# Settings (environment): WORKLOADS (a subset of the above, all by default)
# SMALL=1000 LARGE=1000000 VERSIONS=10 ZIPSIZE=512
# DURATION=10 ROUNDS=3 CONNS=64 SAMPLE=4000 WARMUP=3 PORT_SMALL=18195
# PORT_LARGE=18196 PORT_SMALL_DISK=18193 PORT_LARGE_DISK=18194
# PORT_SMALL_NGINX=18191 PORT_LARGE_NGINX=18192
# STORES=/var/tmp/agora-scale OUT=<dir, a new one in /tmp>
set -euo pipefail

SMALL=${SMALL:-1000}
LARGE=${LARGE:-1000000}
VERSIONS=${VERSIONS:-10}
ZIPSIZE=${ZIPSIZE:-512}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
SAMPLE=${SAMPLE:-4000}
WARMUP=${WARMUP:-3}
PORT_SMALL=${PORT_SMALL:-18195}
PORT_LARGE=${PORT_LARGE:-18196}
PORT_SMALL_DISK=${PORT_SMALL_DISK:-18193}
PORT_LARGE_DISK=${PORT_LARGE_DISK:-18194}
PORT_SMALL_NGINX=${PORT_SMALL_NGINX:-18191}
PORT_LARGE_NGINX=${PORT_LARGE_NGINX:-18192}
STORES=${STORES:-/var/tmp/agora-scale}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/agora-scale.XXXXXX)}
mkdir -p "$OUT" "$STORES"
OUT=$(cd "$OUT" && pwd)
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"

log() { printf 'scale: %s\n' "$*" >&2; }
declare -A pid=()
cleanup() {
	for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
log "building agora and genstore"
(cd "$root" && go build -o "$OUT/agora" ./cmd/agora && go build -o "$OUT/genstore" ./bench/genstore)

# The stores, generated once.
for n in "$SMALL" "$LARGE"; do
	dir=$STORES/$n
	if [[ ! -e $dir/generated ]]; then
		rm -rf "$dir"
		log "generating $n versions into $dir"
		start=$(date +%s)
		"$OUT/genstore" -dir "$dir" -modules $((n / VERSIONS)) -versions "$VERSIONS" -zipsize "$ZIPSIZE" >"$OUT/genstore-$n.log" 2>&1
		echo "$start $(date +%s)" >"$dir/generated"
	fi
done

# The paths of each workload, for each store.
for n in "$SMALL" "$LARGE"; do
	dir=$STORES/$n p=$OUT/paths-$n
	mkdir -p "$p"
	grep '\.info$' "$dir/urls.txt" >"$p/info-all.txt"
	shuf -n "$SAMPLE" --random-source=<(yes) "$p/info-all.txt" >"$p/info-hot.txt"
	grep '/@v/list$' "$dir/urls.txt" | shuf -n "$SAMPLE" --random-source=<(yes) >"$p/list.txt"
	read -r first last <"$dir/generated"
	cp "$p/info-all.txt" "$p/info-disk.txt"
	cp "$p/info-all.txt" "$p/nginx-disk.txt"
	awk -v a="$first" -v b="$last" -v n="$SAMPLE" 'BEGIN { srand(1); for (i = 0; i < n; i++) printf "@%d\n", a + int(rand() * (b - a) * 0.9) }' |
		date -u -f - +'/index?since=%Y-%m-%dT%H:%M:%SZ&limit=100' >"$p/index.txt"
	grep '/@v/list$' "$dir/urls.txt" | sed -e 's|^/||' -e 's|/@v/list$||' | sort | head -n -10 |
		shuf -n "$SAMPLE" -r --random-source=<(yes) | sed 's|^|/catalog?limit=10\&after=|' >"$p/catalog.txt"
done
read -r -a workloads <<<"${WORKLOADS:-info-hot info-all info-disk nginx-disk list index catalog}"

# Four Agoras serving at once: one per store, and one per store with the
# memory cache off (for info-disk); and nginx on each store.
declare -A port=([$SMALL]=$PORT_SMALL [$LARGE]=$PORT_LARGE [$SMALL-disk]=$PORT_SMALL_DISK [$LARGE-disk]=$PORT_LARGE_DISK
	[$SMALL-nginx]=$PORT_SMALL_NGINX [$LARGE-nginx]=$PORT_LARGE_NGINX)
need_nginx
for n in "$SMALL" "$LARGE"; do
	out=$OUT
	OUT=$out/nginx-$n
	start_upstream "${port[$n-nginx]}" "$STORES/$n/mod"
	OUT=$out
	pid[$n-nginx]=$nginx_pid
	wait_http "http://127.0.0.1:${port[$n-nginx]}$(head -1 "$OUT/paths-$n/info-all.txt")"
done
for n in "$SMALL" "$LARGE"; do
	for kind in "" -disk; do
		flags=()
		[[ -n $kind ]] && flags=(--memory-cache-mb 0)
		"$OUT/agora" serve --data-dir "$STORES/$n" --listen "127.0.0.1:${port[$n$kind]}" --upstream off --sumdb off \
			--log-level warn "${flags[@]}" >"$OUT/agora-$n$kind.log" 2>&1 &
		pid[$n$kind]=$!
		wait_http "http://127.0.0.1:${port[$n$kind]}/healthz"
	done
done

run_wrk() { # store workload seconds
	local server=$1
	[[ $2 == info-disk ]] && server+=-disk
	[[ $2 == nginx-disk ]] && server+=-nginx
	wrk -t2 -c"$CONNS" -d"$3"s --timeout 30 -s "$root/bench/warm/paths.lua" "http://127.0.0.1:${port[$server]}" \
		-- "$OUT/paths-$1/$2.txt"
}

log "warming up"
for w in "${workloads[@]}"; do
	for n in "$SMALL" "$LARGE"; do run_wrk "$n" "$w" "$WARMUP" >/dev/null; done
done

: >"$OUT/results.tsv"
for r in $(seq "$ROUNDS"); do
	for w in "${workloads[@]}"; do
		for n in "$SMALL" "$LARGE"; do
			out=$(run_wrk "$n" "$w" "$DURATION")
			echo "$out" >"$OUT/wrk-$r-$w-$n.txt"
			res=$(grep WARM_RESULT <<<"$out")
			get() { sed -E "s/.* $1=([0-9]+).*/\1/" <<<"$res"; }
			if [[ $(get status) != 0 || $(get timeout) != 0 ]]; then
				log "$w on $n: errors: $res"
				exit 1
			fi
			rps=$(awk -v q="$(get requests)" -v d="$(get duration_us)" 'BEGIN { printf "%.0f", q / (d / 1e6) }')
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$w" "$n" "$rps" "$(get p50_us)" "$(get p99_us)" >>"$OUT/results.tsv"
			log "round $r $w $n: $rps req/s"
		done
	done
done

{
	echo "### Scale of the store ($(date -u +%Y-%m-%dT%H:%MZ))"
	echo
	echo "- agora: $(git -C "$root" rev-parse --short HEAD)$([[ -z $(git -C "$root" status --porcelain -- cmd internal) ]] || echo ' with uncommitted changes')"
	echo "- machine: $(nproc) cores, $(uname -sr); stores: $SMALL and $LARGE versions ($VERSIONS per module, zips ~$ZIPSIZE B)"
	echo "- wrk -t2 -c$CONNS, ${DURATION}s per run, $ROUNDS rounds, medians; both Agoras (--log-level warn) on this machine"
	for n in "$SMALL" "$LARGE"; do
		echo "- store $n: $(du -sh "$STORES/$n/mod" | cut -f1) of files, agora.db $(du -h "$STORES/$n/agora.db" | cut -f1); agora RSS now $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/${pid[$n]}/status")"
	done
	echo
	echo "| workload | $SMALL: req/s | $LARGE: req/s | ratio | $SMALL: p50 / p99 | $LARGE: p50 / p99 |"
	echo "|---|---:|---:|---:|---:|---:|"
	for w in "${workloads[@]}"; do
		med() { awk -F'\t' -v w="$w" -v n="$1" -v c="$2" '$2 == w && $3 == n { print $c }' "$OUT/results.tsv" | median; }
		a=$(med "$SMALL" 4) b=$(med "$LARGE" 4)
		printf '| %s | %.0f | %.0f | %.2fx | %.2f / %.2f ms | %.2f / %.2f ms |\n' "$w" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { print b / a }')" \
			"$(med "$SMALL" 5 | awk '{ print $1 / 1000 }')" "$(med "$SMALL" 6 | awk '{ print $1 / 1000 }')" \
			"$(med "$LARGE" 5 | awk '{ print $1 / 1000 }')" "$(med "$LARGE" 6 | awk '{ print $1 / 1000 }')"
	done
} | tee "$OUT/summary.md"
log "results in $OUT"
