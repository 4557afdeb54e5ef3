#!/usr/bin/env bash
# run.sh: the memory benchmark. Peak resident memory while CONNS clients
# download the same 34 MiB zip, split into anonymous memory (what grows
# with load) and file-backed pages (the binary's code and data), for:
#
#   agora       the default build (go build ./cmd/agora)
#   agora-all   built with -tags agora_gcs,agora_azure (every storage driver)
#   minimal     bench/memory/minimal: net/http and http.ServeContent, nothing else
#
# (nginx's figure for the same load comes from bench/warm, which runs it.)
# Each server runs alone, ROUNDS times, wrk -t2 -cCONNS for DURATION s;
# /proc/<pid>/status is sampled every 0.25 s. Not run in CI.
#
#   bench/memory/run.sh           # about 2 minutes
#
# Settings: CONNS=100 DURATION=8 ROUNDS=2 PORT=18197 OUT=<a new dir in /tmp>
set -euo pipefail
CONNS=${CONNS:-100}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-18197}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/agora-memory.XXXXXX)}
mkdir -p "$OUT"
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"
log() { printf 'memory: %s\n' "$*" >&2; }
server=''
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$OUT/store"' EXIT

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
log "building"
(cd "$root" && go build -o "$OUT/agora" ./cmd/agora && go build -tags agora_gcs,agora_azure -o "$OUT/agora-all" ./cmd/agora &&
	go build -o "$OUT/minimal" ./bench/memory/minimal && go build -o "$OUT/genstore" ./bench/genstore)
"$OUT/genstore" -dir "$OUT/store" -modules 0 -big 1:34MiB -prefix example.com/gen34 >"$OUT/genstore.log" 2>&1
zip=$(head -1 "$OUT/store/urls-big.txt")

kib() { awk -v k="$1" '/^'"$1"':/ { print $2 }' "/proc/$2/status"; }
echo -e "server\tround\tidle_rss_kb\tpeak_rss_kb\tpeak_anon_kb\tpeak_file_kb\tbinary_bytes" >"$OUT/results.tsv"
for r in $(seq "$ROUNDS"); do
	for s in agora agora-all minimal; do
		case $s in
		minimal) "$OUT/minimal" "127.0.0.1:$PORT" "$OUT/store" 2>"$OUT/$s.log" & ;;
		*) "$OUT/$s" serve --data-dir "$OUT/store" --listen "127.0.0.1:$PORT" --upstream off --sumdb off --log-level warn 2>"$OUT/$s.log" & ;;
		esac
		server=$!
		wait_http "http://127.0.0.1:$PORT$zip"
		sleep 1
		idle=$(kib VmRSS "$server")
		wrk -t2 -c"$CONNS" -d"$DURATION"s --timeout 60 "http://127.0.0.1:$PORT$zip" >"$OUT/wrk-$s-$r.txt" &
		w=$!
		peak=0 anon=0 file=0
		while kill -0 "$w" 2>/dev/null; do
			v=$(kib VmRSS "$server") a=$(kib RssAnon "$server") f=$(kib RssFile "$server")
			((v > peak)) && peak=$v
			((a > anon)) && anon=$a
			((f > file)) && file=$f
			sleep 0.25
		done
		kill "$server"; wait "$server" 2>/dev/null || true; server=''
		echo -e "$s\t$r\t$idle\t$peak\t$anon\t$file\t$(stat -c %s "$OUT/$s")" >>"$OUT/results.tsv"
		log "round $r $s: idle $idle kB, peak $peak kB (anon $anon, file $file)"
	done
done
{
	echo "| server | binary | idle RSS | peak RSS | peak anonymous | peak file-backed |"
	echo "|---|---:|---:|---:|---:|---:|"
	for s in agora agora-all minimal; do
		awk -F'\t' -v s="$s" '$1 == s { if ($4 > p) { p = $4; i = $3; a = $5; f = $6; b = $7 } }
			END { printf "| %s | %.0f MB | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB |\n", s, b / 1e6, i / 1024, p / 1024, a / 1024, f / 1024 }' "$OUT/results.tsv"
	done
} | tee "$OUT/summary.md"
log "results in $OUT"
