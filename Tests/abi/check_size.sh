#!/usr/bin/env bash
# Size budget of the shared library. Usage: check_size.sh LIBRARY MAX_BYTES
# Fails when LIBRARY (stripped, as built) is larger than MAX_BYTES; prints its size per ELF section either way, so a
# regression shows what grew.
set -euo pipefail
library=$1 limit=$2
bytes=$(stat -c %s "$library")
size -A "$library" | awk 'NR > 2 && $2 >= 65536 {printf "  %-28s %10d\n", $1, $2}'
if [ "$bytes" -gt "$limit" ]; then
    echo "$library is $bytes bytes, over the budget of $limit"
    exit 1
fi
echo "$library: $bytes bytes, within the budget of $limit"
