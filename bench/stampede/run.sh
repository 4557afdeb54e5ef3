#!/usr/bin/env bash
# run.sh: the "stampede" benchmark. CLIENTS (50) clients ask at the same
# moment for the same zip (7 MiB) that Agora does not hold yet; the upstream
# is nginx serving a generated GOPROXY tree on 127.0.0.1. The baseline is
# nginx serving that zip, already on disk, to the same number of clients.
# For each round the table gives the wall time until the last client has
# the whole zip, and how many times the upstream was asked for the zip
# (the goal: once, and within 1.2x the baseline's time). Not run in CI.
#
#   bench/stampede/run.sh             # under a minute
#
# Settings (environment): ROUNDS=5 CLIENTS=50 SIZE=7MiB PORT_UP=18195
# PORT_AGORA=18196 OUT=<dir> (ports below the ephemeral range, which the clients'
# own sockets use). Clients are curl processes started together.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
CLIENTS=${CLIENTS:-50}
SIZE=${SIZE:-7MiB}
PORT_UP=${PORT_UP:-18195}
PORT_AGORA=${PORT_AGORA:-18196}
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
OUT=${OUT:-$(mktemp -d /tmp/agora-stampede.XXXXXX)}
mkdir -p "$OUT"
echo "output in $OUT"
need_nginx

nginx_pid= agora_pid=
cleanup() {
	[ -n "$agora_pid" ] && kill "$agora_pid" 2>/dev/null || true
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
}
trap cleanup EXIT

(cd "$root" && go build -o "$OUT/agora" ./cmd/agora)
(cd "$root" && go run ./bench/genstore -dir "$OUT/store" -modules 0 -big "1:$SIZE" -meta=false 2>&1 | tail -n 1)
zip=$(cat "$OUT/store/urls-big.txt")

# The upstream, logging requests so that zip fetches can be counted.
start_upstream "$PORT_UP" "$OUT/store/mod" "$OUT/nginx/access.log"

wait_http "http://127.0.0.1:$PORT_UP$zip"

# stampede URL: CLIENTS curls at once; prints the wall time in seconds,
# and fails unless every client got the whole zip.
want=$(stat -c %s "$OUT/store/mod$zip")
stampede() {
	local s e i
	rm -f "$OUT"/sizes.*
	s=$(date +%s.%N)
	for i in $(seq "$CLIENTS"); do
		curl -s -o /dev/null -w '%{http_code} %{size_download}\n' "$1" >"$OUT/sizes.$i" &
	done
	wait
	e=$(date +%s.%N)
	if [ "$(cat "$OUT"/sizes.* | sort -u)" != "200 $want" ]; then
		echo "a client did not get the whole zip: $(cat "$OUT"/sizes.* | sort | uniq -c)" >&2
		return 1
	fi
	echo "$e - $s" | bc
}

: >"$OUT/results.tsv"
for r in $(seq "$ROUNDS"); do
	base=$(stampede "http://127.0.0.1:$PORT_UP$zip")
	rm -rf "$OUT/agora-data"
	"$OUT/agora" serve --listen "127.0.0.1:$PORT_AGORA" --data-dir "$OUT/agora-data" \
		--upstream "http://127.0.0.1:$PORT_UP" --sumdb off --log-level warn 2>"$OUT/agora.log" &
	agora_pid=$!
	wait_http "http://127.0.0.1:$PORT_AGORA/readyz"
	n1=$(grep -c "$zip" "$OUT/nginx/access.log" || true)
	cold=$(stampede "http://127.0.0.1:$PORT_AGORA$zip")
	n2=$(grep -c "$zip" "$OUT/nginx/access.log" || true)
	kill "$agora_pid"
	wait "$agora_pid" 2>/dev/null || true
	agora_pid=
	printf '%s\t%s\t%s\t%s\n' "$r" "$base" "$cold" "$((n2 - n1))" | tee -a "$OUT/results.tsv"
done

mb=$(cut -f2 "$OUT/results.tsv" | median)
mc=$(cut -f3 "$OUT/results.tsv" | median)
fetches=$(cut -f4 "$OUT/results.tsv" | sort -u | tr '\n' ' ')
{
	echo "| $CLIENTS clients, one $SIZE zip | nginx, on disk | Agora, not held (fills once) | ratio | upstream zip requests per round |"
	echo "|---|---:|---:|---:|---:|"
	printf '| median of %d rounds | %.3f s | %.3f s | **%.2fx** (goal 1.2x) | %s|\n' "$ROUNDS" "$mb" "$mc" "$(echo "$mc / $mb" | bc -l)" "$fetches"
} | tee "$OUT/summary.md"
