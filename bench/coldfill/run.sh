#!/usr/bin/env bash
# run.sh: the "cold fill" benchmark. A generated module graph (MODULES
# modules, each requiring DEPS modules generated before it; a main module
# requiring the graph's roots) is served by an upstream proxy: nginx serving
# the GOPROXY file tree from disk, on 127.0.0.1. In each round, with an empty
# client module cache every time:
#
#   direct  go mod download all, GOPROXY = the upstream
#   cold    the same through a new Agora with an empty store (it fills from
#           the upstream as the go command asks), for each fill_ahead
#           setting in AHEAD
#   warm    the same through that Agora again, now filled
#
# and the table gives the medians and the ratios cold/direct and warm/direct
# (the issue's goals: at most 1.2x and 0.9x), one row per setting. Not run
# in CI.
#
#   bench/coldfill/run.sh                 # ~3 minutes with the defaults
#   DELAY=10ms bench/coldfill/run.sh      # an upstream 10 ms away
#   ROUNDS=1 bench/coldfill/run.sh        # a quick check of the harness
#
# Settings (environment): ROUNDS=5 MODULES=190 DEPS=3 VERSIONS=2 ZIPSIZE=64KiB
# PORT_UP=18190 PORT_AGORA=18191 OUT=<dir> AGORA_FLAGS (extra flags for agora
# serve) CLIENT_DIR=/dev/shm/... (the go command's module cache: on tmpfs, so
# that extracting zips does not load the disk Agora writes to; the page
# cache is flushed with sync before each timed run). The go command runs with GOSUMDB=off: the generated modules are in
# no checksum database, and Agora runs with --sumdb off likewise, so both
# sides do the same work.
#
# AHEAD="off mod zip": the fill_ahead settings to run, each with its own
# Agora (cold, then warm) after the same round's direct run.
#
# DELAY=10ms puts bench/delay in front of nginx (on PORT_DELAY=18189): every
# request to the upstream, the go command's in the direct runs and Agora's
# in the others, is held that long first, as a round trip to a remote
# module proxy would hold it. Empty (the default): no delay.
#
# BASE_REV=<git revision> also builds Agora from that revision (git archive
# into OUT/base-src) and runs it in every round right after this tree's,
# with the same settings: a cold run varies by more than a change may gain
# from one run to the next on a shared machine, so changes are compared
# within rounds. The table then has a row per build and setting.
#
# Each round's Agora gets a new data directory, and all of them are removed
# only after the last round: removing thousands of files just before a run
# makes ext4's inode allocator skip the recently freed inodes one by one
# (recently_deleted in perf), which charged the benchmark's own cleanup to
# Agora's file creations.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
MODULES=${MODULES:-190}
DEPS=${DEPS:-3}
VERSIONS=${VERSIONS:-2}
ZIPSIZE=${ZIPSIZE:-64KiB}
PORT_UP=${PORT_UP:-18190}
PORT_AGORA=${PORT_AGORA:-18191}
PORT_DELAY=${PORT_DELAY:-18189}
DELAY=${DELAY:-}
AHEAD=${AHEAD:-off mod zip}
AGORA_FLAGS=${AGORA_FLAGS:-}
BASE_REV=${BASE_REV:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
OUT=${OUT:-$(mktemp -d /tmp/agora-coldfill.XXXXXX)}
CLIENT_DIR=${CLIENT_DIR:-$(mktemp -d /dev/shm/agora-coldfill-client.XXXXXX)}
mkdir -p "$OUT" "$CLIENT_DIR"
echo "output in $OUT"

need_nginx

nginx_pid= agora_pid= delay_pid=
cleanup() {
	[ -n "$agora_pid" ] && kill "$agora_pid" 2>/dev/null || true
	[ -n "$delay_pid" ] && kill "$delay_pid" 2>/dev/null || true
	[ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
	rm -rf "$CLIENT_DIR" "$OUT"/agora-data.*
}
trap cleanup EXIT

(cd "$root" && go build -o "$OUT/agora" ./cmd/agora)
builds=agora
if [ -n "$BASE_REV" ]; then
	mkdir -p "$OUT/base-src"
	git -C "$root" archive "$BASE_REV" | tar -x -C "$OUT/base-src"
	(cd "$OUT/base-src" && go build -o "$OUT/agora-base" ./cmd/agora)
	builds="agora agora-base"
	echo "agora-base: $(git -C "$root" rev-parse --short "$BASE_REV") ($BASE_REV)"
fi
(cd "$root" && go run ./bench/genstore -dir "$OUT/store" -modules "$MODULES" -versions "$VERSIONS" \
	-zipsize "$ZIPSIZE" -deps "$DEPS" -meta=false -project "$OUT/project" 2>&1 | tail -n 1)

# The upstream: nginx with the warm benchmark's configuration.
start_upstream "$PORT_UP" "$OUT/store/mod"

wait_http "http://127.0.0.1:$PORT_UP/example.com/gen/m00000/@v/list"
upstream="http://127.0.0.1:$PORT_UP"
if [ -n "$DELAY" ]; then
	(cd "$root" && go build -o "$OUT/delay" ./bench/delay)
	"$OUT/delay" -listen "127.0.0.1:$PORT_DELAY" -to "$upstream" -delay "$DELAY" &
	delay_pid=$!
	upstream="http://127.0.0.1:$PORT_DELAY"
	wait_http "$upstream/example.com/gen/m00000/@v/list"
fi

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

download "$upstream" >/dev/null 2>&1 # warms the page cache and GOCACHE
n=$(find "$CLIENT_DIR/gopath/pkg/mod/cache/download" -name '*.zip' | wc -l)
echo "the graph: $n module zips downloaded by go mod download all"

: >"$OUT/results.tsv"
for r in $(seq "$ROUNDS"); do
	d=$(seconds download "$upstream")
	for mode in $AHEAD; do
		for bin in $builds; do
			# shellcheck disable=SC2086
			"$OUT/$bin" serve --listen "127.0.0.1:$PORT_AGORA" --data-dir "$OUT/agora-data.$r.$mode.$bin" \
				--upstream "$upstream" --sumdb off --log-level warn --fill-ahead "$mode" $AGORA_FLAGS 2>"$OUT/$bin.$r.$mode.log" &
			agora_pid=$!
			wait_http "http://127.0.0.1:$PORT_AGORA/readyz"
			c=$(seconds download "http://127.0.0.1:$PORT_AGORA")
			w=$(seconds download "http://127.0.0.1:$PORT_AGORA")
			kill "$agora_pid"
			wait "$agora_pid" 2>/dev/null || true
			agora_pid=
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$bin" "$d" "$c" "$w" | tee -a "$OUT/results.tsv"
		done
	done
done

{
	echo "| go mod download all, $n modules${DELAY:+, upstream $DELAY away}; median of $ROUNDS rounds | direct | through Agora, cold | through Agora, warm |"
	echo "|---|---:|---:|---:|"
	for mode in $AHEAD; do
		for bin in $builds; do
			md=$(awk -v m="$mode" -v b="$bin" '$2 == m && $3 == b {print $4}' "$OUT/results.tsv" | median)
			mc=$(awk -v m="$mode" -v b="$bin" '$2 == m && $3 == b {print $5}' "$OUT/results.tsv" | median)
			mw=$(awk -v m="$mode" -v b="$bin" '$2 == m && $3 == b {print $6}' "$OUT/results.tsv" | median)
			label="fill_ahead = $mode"
			[ "$bin" = agora-base ] && label+=" (base $BASE_REV)"
			printf '| %s | %.2f s | %.2f s (**%.2fx**, goal 1.2x) | %.2f s (**%.2fx**, goal 0.9x) |\n' \
				"$label" "$md" "$mc" "$(echo "$mc / $md" | bc -l)" "$mw" "$(echo "$mw / $md" | bc -l)"
		done
	done
} | tee "$OUT/summary.md"
