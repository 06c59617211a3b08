#!/bin/bash
# `systemd-analyze verify` accepts every installed unit, silently (it exits 0 on unknown keys and
# bad values, so any output fails the test). The units name /usr/bin/mpcpush, which verify wants
# to exist: the copies verified here point into the DESTDIR instead, and nothing else differs.
source "$(dirname "$0")/lib.sh"
need_systemd_analyze

dest=$WORK/dest
mp_install "$dest" /usr mpcpush
mkdir "$WORK/units"
for unit in "${UNITS[@]}"; do
    sed "s#/usr/bin/mpcpush#$dest/usr/bin/mpcpush#g" "$dest/usr/lib/systemd/system/$unit" \
        >"$WORK/units/$unit"
done
cd "$WORK/units"
# Templates are verified as instances (verify finds the template next to them).
for unit in mpcpush.service mpcpush-migrate.service mpcpush-receiver@a.service \
            mpcpush-dispatcher@a.service; do
    if systemd-analyze verify --man=no "./$unit" >"$WORK/verify.out" 2>&1 &&
        [[ ! -s $WORK/verify.out ]]; then
        echo "ok: systemd-analyze verify $unit"
    else
        cat "$WORK/verify.out" >&2
        fail "systemd-analyze verify $unit"
    fi
done
finish
