#!/bin/sh
# One-shot (the redis-cluster-create service): join the six nodes into one cluster, three
# masters with a replica each. Idempotent: does nothing once the cluster is formed.
# CLUSTER MEET takes addresses, not names (redis/redis#11148), so names are resolved here;
# clients are sent hostnames (cluster-preferred-endpoint-type hostname).
set -eu
first=$1
if redis-cli -h "$first" cluster info | grep -q '^cluster_state:ok'; then
  echo "cluster already formed"
  exit 0
fi
addresses=""
for node in "$@"; do
  ip=$(getent hosts "$node" | awk '{print $1; exit}')
  [ -n "$ip" ] || { echo "cannot resolve $node" >&2; exit 1; }
  addresses="$addresses $ip:6379"
done
# shellcheck disable=SC2086  # one argument per address
redis-cli --cluster create $addresses --cluster-replicas 1 --cluster-yes
for _ in $(seq 1 60); do
  redis-cli -h "$first" cluster info | grep -q '^cluster_state:ok' && exit 0
  sleep 1
done
echo "the cluster did not reach cluster_state:ok" >&2
exit 1
