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
OUT=${OUT:-$(mktemp -d /tmp/agora-stampede.XXXXXX)}
mkdir -p "$OUT"
echo "output in $OUT"
command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }

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
mkdir -p "$OUT/nginx"
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
sed -e "s|@USER_LINE@|$user_line|" -e "s|@PREFIX@|$OUT/nginx|g" -e "s|@SENDFILE@|on|" \
	-e "s|@OPEN_FILE_CACHE@||" -e "s|@PORT@|$PORT_UP|" -e "s|@ROOT@|$OUT/store/mod|" \
	-e "s|access_log off;.*|access_log $OUT/nginx/access.log;|" \
	"$root/bench/warm/nginx.conf.tmpl" >"$OUT/nginx/nginx.conf"
nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx/" -g 'daemon off;' &
nginx_pid=$!

wait_http() {
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no answer from $1" >&2
	return 1
}
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
	n0=$(grep -c "$zip" "$OUT/nginx/access.log" || true)
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
	: "$n0"
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mb=$(cut -f2 "$OUT/results.tsv" | median)
mc=$(cut -f3 "$OUT/results.tsv" | median)
fetches=$(cut -f4 "$OUT/results.tsv" | sort -u | tr '\n' ' ')
{
	echo "| $CLIENTS clients, one $SIZE zip | nginx, on disk | Agora, not held (fills once) | ratio | upstream zip requests per round |"
	echo "|---|---:|---:|---:|---:|"
	printf '| median of %d rounds | %.3f s | %.3f s | **%.2fx** (goal 1.2x) | %s|\n' "$ROUNDS" "$mb" "$mc" "$(echo "$mc / $mb" | bc -l)" "$fetches"
} | tee "$OUT/summary.md"
