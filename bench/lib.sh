# lib.sh: shell pieces shared by the benchmarks that put Agora in front of
# an nginx upstream (bench/coldfill, bench/stampede). Source it; it needs
# $root (the repository) and $OUT (the run's directory).

# need_nginx installs nginx from Debian's packages if it is missing.
need_nginx() {
	command -v nginx >/dev/null && return
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
}

# start_upstream PORT ROOT [ACCESS_LOG] starts nginx with the warm
# benchmark's configuration (bench/warm/nginx.conf.tmpl, sendfile on)
# serving the GOPROXY tree ROOT on 127.0.0.1:PORT, logging requests to
# ACCESS_LOG if given; it sets nginx_pid.
start_upstream() {
	local port=$1 tree=$2 access=${3:-} user_line=""
	mkdir -p "$OUT/nginx"
	[ "$(id -u)" = 0 ] && user_line="user root;"
	sed -e "s|@USER_LINE@|$user_line|" -e "s|@PREFIX@|$OUT/nginx|g" -e "s|@SENDFILE@|on|" \
		-e "s|@OPEN_FILE_CACHE@||" -e "s|@PORT@|$port|" -e "s|@ROOT@|$tree|" \
		${access:+-e "s|access_log off;.*|access_log $access;|"} \
		"$root/bench/warm/nginx.conf.tmpl" >"$OUT/nginx/nginx.conf"
	nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx/" -g 'daemon off;' &
	nginx_pid=$!
}

# wait_http URL waits up to 10 s for URL to answer 2xx.
wait_http() {
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no answer from $1" >&2
	return 1
}

# median prints the median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
