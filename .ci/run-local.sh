#!/usr/bin/env bash
# `make run`: start the daemon in the foreground with the example configuration
# (SQLite file under ./data, HTTP on 127.0.0.1:8500, DNS on 127.0.0.1:8600).
set -euo pipefail
binary=$1
shift
mkdir -p data
exec "$binary" "$@"
