#!/usr/bin/env bash
# run.sh: the "cold fill" benchmark. A generated module graph (MODULES
# modules, each requiring DEPS modules generated before it; a main module
# requiring the graph's roots) is served by an upstream proxy: nginx serving
# the GOPROXY file tree from disk, on 127.0.0.1. In each round, with an empty
# client module cache every time:
#
#   direct  go mod download all, GOPROXY = the upstream
#   cold    the same through a new Agora with an empty store (it fills from
#           the upstream as the go command asks)
#   warm    the same through that Agora again, now filled
#
# and the table gives the medians and the ratios cold/direct and warm/direct
# (the issue's goals: at most 1.2x and 0.9x). Not run in CI.
#
#   bench/coldfill/run.sh                 # ~2 minutes with the defaults
#   ROUNDS=1 bench/coldfill/run.sh        # a quick check of the harness
#
# Settings (environment): ROUNDS=5 MODULES=190 DEPS=3 VERSIONS=2 ZIPSIZE=64KiB
# PORT_UP=18190 PORT_AGORA=18191 OUT=<dir> AGORA_FLAGS (extra flags for agora
# serve) CLIENT_DIR=/dev/shm/... (the go command's module cache: on tmpfs, so
# that extracting zips does not load the disk Agora writes to; the page
# cache is flushed with sync before each timed run). The go command runs with GOSUMDB=off: the generated modules are in
# no checksum database, and Agora runs with --sumdb off likewise, so both
# sides do the same work.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
MODULES=${MODULES:-190}
DEPS=${DEPS:-3}
VERSIONS=${VERSIONS:-2}
ZIPSIZE=${ZIPSIZE:-64KiB}
PORT_UP=${PORT_UP:-18190}
PORT_AGORA=${PORT_AGORA:-18191}
AGORA_FLAGS=${AGORA_FLAGS:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
OUT=${OUT:-$(mktemp -d /tmp/agora-coldfill.XXXXXX)}
CLIENT_DIR=${CLIENT_DIR:-$(mktemp -d /dev/shm/agora-coldfill-client.XXXXXX)}
mkdir -p "$OUT" "$CLIENT_DIR"
echo "output in $OUT"

need_nginx

nginx_pid= agora_pid=
cleanup() {
	[ -n "$agora_pid" ] && kill "$agora_pid" 2>/dev/null || true
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
	rm -rf "$CLIENT_DIR"
}
trap cleanup EXIT

(cd "$root" && go build -o "$OUT/agora" ./cmd/agora)
(cd "$root" && go run ./bench/genstore -dir "$OUT/store" -modules "$MODULES" -versions "$VERSIONS" \
	-zipsize "$ZIPSIZE" -deps "$DEPS" -meta=false -project "$OUT/project" 2>&1 | tail -n 1)

# The upstream: nginx with the warm benchmark's configuration.
start_upstream "$PORT_UP" "$OUT/store/mod"

wait_http "http://127.0.0.1:$PORT_UP/example.com/gen/m00000/@v/list"

# The go command: a clean environment, a new module cache each time.
mkdir -p "$OUT/home/.config/go/telemetry"
echo off >"$OUT/home/.config/go/telemetry/mode"
download() {
	rm -rf "$CLIENT_DIR/gopath" "$OUT/project/go.sum"
	(cd "$OUT/project" && env -i PATH="$PATH" HOME="$OUT/home" GOPATH="$CLIENT_DIR/gopath" GOCACHE="$OUT/gocache" \
		GOFLAGS="-mod=mod -modcacherw" GOPROXY="$1" GOSUMDB=off GOTOOLCHAIN=local \
		go mod download all)
}
seconds() { # runs "$@", prints its wall time in seconds
	local s e
	sync
	s=$(date +%s.%N)
	"$@" >"$OUT/last.log" 2>&1 || { cat "$OUT/last.log" >&2; return 1; }
	e=$(date +%s.%N)
	echo "$e - $s" | bc
}

download "http://127.0.0.1:$PORT_UP" >/dev/null 2>&1 # warms the page cache and GOCACHE
n=$(find "$CLIENT_DIR/gopath/pkg/mod/cache/download" -name '*.zip' | wc -l)
echo "the graph: $n module zips downloaded by go mod download all"

: >"$OUT/results.tsv"
for r in $(seq "$ROUNDS"); do
	d=$(seconds download "http://127.0.0.1:$PORT_UP")
	rm -rf "$OUT/agora-data"
	# shellcheck disable=SC2086
	"$OUT/agora" serve --listen "127.0.0.1:$PORT_AGORA" --data-dir "$OUT/agora-data" \
		--upstream "http://127.0.0.1:$PORT_UP" --sumdb off --log-level warn $AGORA_FLAGS 2>"$OUT/agora.log" &
	agora_pid=$!
	wait_http "http://127.0.0.1:$PORT_AGORA/readyz"
	c=$(seconds download "http://127.0.0.1:$PORT_AGORA")
	w=$(seconds download "http://127.0.0.1:$PORT_AGORA")
	kill "$agora_pid"
	wait "$agora_pid" 2>/dev/null || true
	agora_pid=
	printf '%s\t%s\t%s\t%s\n' "$r" "$d" "$c" "$w" | tee -a "$OUT/results.tsv"
done

md=$(cut -f2 "$OUT/results.tsv" | median)
mc=$(cut -f3 "$OUT/results.tsv" | median)
mw=$(cut -f4 "$OUT/results.tsv" | median)
{
	echo "| go mod download all, $n modules | direct | through Agora, cold | through Agora, warm |"
	echo "|---|---:|---:|---:|"
	printf '| median of %d rounds | %.2f s | %.2f s (**%.2fx**, goal 1.2x) | %.2f s (**%.2fx**, goal 0.9x) |\n' \
		"$ROUNDS" "$md" "$mc" "$(echo "$mc / $md" | bc -l)" "$mw" "$(echo "$mw / $md" | bc -l)"
} | tee "$OUT/summary.md"
