#!/bin/sh
# One-shot (the mysql-replication service): point the replica at the primary by GTID
# auto-position and wait until both replication threads run. Idempotent: on a stack that
# already replicates, it re-points it at the same place.
set -eu
mysql -h "$REPLICA_HOST" -uroot <<SQL
STOP REPLICA;
CHANGE REPLICATION SOURCE TO
  SOURCE_HOST='${PRIMARY_HOST}', SOURCE_PORT=3306,
  SOURCE_USER='repl', SOURCE_PASSWORD='${MYSQL_REPL_PASSWORD}',
  SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=5;
START REPLICA;
SQL
for _ in $(seq 1 60); do
  status=$(mysql -h "$REPLICA_HOST" -uroot -e 'SHOW REPLICA STATUS\G')
  if echo "$status" | grep -q 'Replica_IO_Running: Yes' \
    && echo "$status" | grep -q 'Replica_SQL_Running: Yes'; then
    echo "replica $REPLICA_HOST replicates from $PRIMARY_HOST"
    exit 0
  fi
  sleep 1
done
echo "$status" >&2
echo "replication did not start" >&2
exit 1
