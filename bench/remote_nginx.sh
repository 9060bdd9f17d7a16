#!/usr/bin/env bash
# Remote-read benchmark on loopback: nginx serves a file of SIZE bytes (default 1 GiB) from
# DIR (default a fresh temporary directory), and `kvik bench --url` reads it with parallel
# ranged requests and, in the same run, with the single-stream baselines (one request through
# kvik, and the curl command). Prints kvik's JSON lines and table.
#
# usage: bench/remote_nginx.sh KVIK_BINARY [SIZE] [DIR] [-- extra kvik bench options]
set -euo pipefail

kvik=${1:?usage: $0 KVIK_BINARY [SIZE] [DIR] [-- kvik bench options]}
shift
size=${1:-1073741824}
[[ $# -gt 0 ]] && shift
dir=${1:-}
[[ $# -gt 0 && $1 != -- ]] && shift
[[ ${1:-} == -- ]] && shift

nginx=${KVIK_TEST_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[[ -x $nginx ]] || { echo "remote_nginx: nginx not found (apt-get install nginx-light)" >&2; exit 77; }

work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  sleep 0.2
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z $dir ]]; then
  dir=$work/www
  mkdir -p "$dir"
fi
chmod 755 "$dir"
file=$dir/kvik-bench-$size.bin
if [[ ! -f $file || $(stat -c %s "$file") != "$size" ]]; then
  head -c "$size" /dev/urandom >"$file"
fi
chmod 644 "$file"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ncpu=$(nproc)
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root;"
cat >"$work/nginx.conf" <<EOF
daemon on;
worker_processes $(( ncpu > 16 ? 16 : ncpu ));
$user_line
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  sendfile on; tcp_nopush on; keepalive_requests 1000000;
  server { listen 127.0.0.1:$port; root $dir; location / { } }
}
EOF
"$nginx" -p "$work" -e "$work/error.log" -c "$work/nginx.conf"
for _ in $(seq 50); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.1
done
cat "$file" >/dev/null # the page cache holds the file for every engine alike
echo "nginx on 127.0.0.1:$port, $ncpu CPUs, $(basename "$file")"
"$kvik" bench --url "http://127.0.0.1:$port/$(basename "$file")" "$@"
