#!/bin/sh
# Runs once, on the MySQL primary's first start (/docker-entrypoint-initdb.d), after the
# image has created MYSQL_DATABASE and MYSQL_USER. Binary-logged with GTIDs, so the replica
# gets these users too by replicating from the beginning.
#   repl            what the replica connects as (REPLICATION SLAVE only)
#   boxoffice_read  api_server's reads on the replica: SELECT on the schema, and
#                   REPLICATION CLIENT so that it can read SHOW REPLICA STATUS (the lag)
set -eu
mysql --protocol=socket -uroot -p"$MYSQL_ROOT_PASSWORD" <<SQL
CREATE USER 'repl'@'%' IDENTIFIED BY '${MYSQL_REPL_PASSWORD}';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE USER 'boxoffice_read'@'%' IDENTIFIED BY '${MYSQL_READ_PASSWORD}';
GRANT SELECT ON \`${MYSQL_DATABASE}\`.* TO 'boxoffice_read'@'%';
GRANT REPLICATION CLIENT ON *.* TO 'boxoffice_read'@'%';
SQL
