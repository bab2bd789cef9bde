#!/usr/bin/env bash
# Read throughput of a lab's chat service measured by an independent tool, ApacheBench (`ab`,
# Debian's apache2-utils): one user, logged in, reads one conversation of MESSAGES messages
# (GET /users/{u}/{tag}/chat, JSON) REQUESTS times, CONCURRENCY at a time.
#
#   scripts/ab-reads.sh HOST:PORT [REQUESTS] [CONCURRENCY] [MESSAGES]
#
# HOST:PORT is an input node's HTTP address (`labctl status LAB` lists them). The user is
# registered with a random tag, so the script can run again on the same lab.
set -euo pipefail
address=${1:?usage: scripts/ab-reads.sh HOST:PORT [REQUESTS] [CONCURRENCY] [MESSAGES]}
requests=${2:-20000}
concurrency=${3:-8}
messages=${4:-10}
command -v ab > /dev/null || { echo "ab not found: apt-get install apache2-utils" >&2; exit 2; }
base="http://$address"
tag=$(( (RANDOM % 900000) + 100000 ))
user="abreader"
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT
json=(-H 'Accept: application/json' -H 'Content-Type: application/json')
# One cookie jar throughout: the register's read position (labctl_pos) goes with the login, so
# an input node that has not applied the registration yet passes the login up (read-your-writes).
curl -sf "${json[@]}" -c "$jar" -X POST "$base/register" \
  -d "{\"username\":\"$user\",\"tag\":\"$tag\",\"password\":\"a long enough password\"}" > /dev/null
curl -sf "${json[@]}" -b "$jar" -c "$jar" -X POST "$base/login" \
  -d "{\"username\":\"$user\",\"tag\":\"$tag\",\"password\":\"a long enough password\"}" > /dev/null
session=$(awk '$6 == "labctl_session" { print $7 }' "$jar")
[ -n "$session" ] || { echo "login at $base set no session cookie" >&2; exit 1; }
for i in $(seq 1 "$messages"); do
  curl -sf "${json[@]}" -b "$jar" -c "$jar" -X POST "$base/users/$user/$tag/chat" \
    -d "{\"content\":\"message $i\"}" > /dev/null
done
ab -q -k -n "$requests" -c "$concurrency" -C "labctl_session=$session" \
  -H 'Accept: application/json' "$base/users/$user/$tag/chat" \
  | grep -E "Requests per second|Failed requests|Non-2xx|Time per request|50%|99%|Length|Complete"
