#!/bin/bash
# `systemd-analyze security --offline=yes` rates every installed service at an overall exposure
# of 2.0 or lower (0 is the best, 10 the worst).
source "$(dirname "$0")/lib.sh"
need_systemd_analyze
systemd-analyze security --help 2>/dev/null | grep -q -- '--offline' ||
    skip "this systemd-analyze has no security --offline (systemd 250 or later needed)"

MAX=2.0
dest=$WORK/dest
mp_install "$dest" /usr mpcpush
cd "$dest/usr/lib/systemd/system"
for unit in "${UNITS[@]}"; do
    if ! systemd-analyze security --offline=yes --no-pager "./$unit" >"$WORK/security.out" 2>&1; then
        cat "$WORK/security.out" >&2
        fail "systemd-analyze security $unit"
        continue
    fi
    score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' "$WORK/security.out")
    if [[ -z $score ]]; then
        cat "$WORK/security.out" >&2
        fail "$unit: no overall exposure level in the output"
    elif awk -v s="$score" -v max="$MAX" 'BEGIN { exit !(s <= max) }'; then
        echo "ok: $unit exposure $score (at most $MAX)"
    else
        grep '✗' "$WORK/security.out" >&2 || true
        fail "$unit: exposure $score is above $MAX"
    fi
done
finish
