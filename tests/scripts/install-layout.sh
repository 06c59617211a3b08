#!/bin/bash
# `cmake --install` into a DESTDIR with the prefix /usr lays out the binaries, the systemd units
# (naming the installed paths), the example configuration (every key, with its default), the
# Fireblocks keys, the migrations and the documentation, and writes nothing outside DESTDIR.
source "$(dirname "$0")/lib.sh"

dest=$WORK/dest
if [[ -n $EMULATOR_BIN && -x $EMULATOR_BIN ]]; then
    mp_install "$dest" /usr
    [[ -x $dest/usr/bin/mpcpush-fcm-emulator ]] || fail "usr/bin/mpcpush-fcm-emulator missing"
else
    echo "note: the emulator is not built; installing the mpcpush component only"
    mp_install "$dest" /usr mpcpush
fi

# Nothing outside DESTDIR: every file the install reports lies under it.
sed -n 's/^-- \(Installing\|Up-to-date\): //p' "$WORK/install.log" >"$WORK/installed"
[[ -s $WORK/installed ]] || fail "the install reported no files"
while IFS= read -r path; do
    [[ $path == "$dest"/* ]] || fail "installed outside DESTDIR: $path"
done <"$WORK/installed"
[[ ! -e $dest/usr/etc ]] || fail "usr/etc exists: the configuration belongs in /etc for the prefix /usr"

# Binaries.
[[ -x $dest/usr/bin/mpcpush ]] || fail "usr/bin/mpcpush missing or not executable"
"$dest/usr/bin/mpcpush" --version >/dev/null || fail "the installed mpcpush does not run"

# Units.
unitdir=$dest/usr/lib/systemd/system
for unit in "${UNITS[@]}"; do
    file=$unitdir/$unit
    if [[ ! -f $file ]]; then
        fail "unit $unit missing"
        continue
    fi
    if grep -n '@[A-Za-z_]*@' "$file"; then
        fail "$unit: placeholders left unsubstituted"
    fi
    grep -q '^ExecStart=/usr/bin/mpcpush --config /etc/mpcpush/mpcpush.conf ' "$file" ||
        fail "$unit: ExecStart does not run /usr/bin/mpcpush --config /etc/mpcpush/mpcpush.conf"
    grep -q '^DynamicUser=yes$' "$file" || fail "$unit: no DynamicUser=yes"
    grep -q '^ProtectSystem=strict$' "$file" || fail "$unit: no ProtectSystem=strict"
done
check_line() { # UNIT REGEX
    grep -Eq "^$2\$" "$unitdir/$1" || fail "$1: no line matching ^$2\$"
}
check_line mpcpush.service 'ExecStart=/usr/bin/mpcpush --config /etc/mpcpush/mpcpush.conf run'
check_line mpcpush-receiver@.service 'ExecStart=/usr/bin/mpcpush --config /etc/mpcpush/mpcpush.conf receiver'
check_line mpcpush-dispatcher@.service 'ExecStart=/usr/bin/mpcpush --config /etc/mpcpush/mpcpush.conf dispatcher'
check_line mpcpush-migrate.service 'ExecStart=/usr/bin/mpcpush --config /etc/mpcpush/mpcpush.conf migrate'
check_line mpcpush-migrate.service 'Type=oneshot'
check_line mpcpush-receiver@.service 'EnvironmentFile=-/etc/mpcpush/receiver-%i.conf'
check_line mpcpush-dispatcher@.service 'EnvironmentFile=-/etc/mpcpush/dispatcher-%i.conf'
for unit in "${SERVICES[@]}"; do
    check_line "$unit" 'Type=notify'
    check_line "$unit" 'NotifyAccess=main'
    check_line "$unit" 'WatchdogSec=30s'
    check_line "$unit" 'ExecReload=/bin/kill -HUP \$MAINPID'
    check_line "$unit" 'LimitNOFILE=65536'
    check_line "$unit" 'Wants=.*mpcpush-migrate\.service.*'
    check_line "$unit" 'After=.*mpcpush-migrate\.service.*'
done
for unit in mpcpush.service mpcpush-dispatcher@.service; do
    check_line "$unit" 'LoadCredential=google-service-account\.json:/etc/mpcpush/google-service-account\.json'
done

# Data and documentation.
for key in "$SOURCE_DIR"/keys/fireblocks/*.pem; do
    cmp -s "$key" "$dest/usr/share/mpcpush/fireblocks-keys/${key##*/}" ||
        fail "fireblocks-keys/${key##*/} missing or different"
done
for sql in "$SOURCE_DIR"/sql/*.sql; do
    cmp -s "$sql" "$dest/usr/share/mpcpush/sql/${sql##*/}" || fail "sql/${sql##*/} missing or different"
done
for doc in README.md SECURITY.md LICENSE; do
    if [[ -f $SOURCE_DIR/$doc ]]; then
        cmp -s "$SOURCE_DIR/$doc" "$dest/usr/share/doc/mpcpush/$doc" || fail "doc/$doc missing or different"
    fi
done

# The example configuration: every key of `mpcpush --help`, commented out, with its default;
# no key that mpcpush does not know; paths that exist; and mpcpush accepts the file.
example=$dest/etc/mpcpush/mpcpush.conf.example
if [[ ! -f $example ]]; then
    fail "etc/mpcpush/mpcpush.conf.example missing"
else
    grep -n '@[A-Za-z_]*@' "$example" && fail "mpcpush.conf.example: placeholders left unsubstituted"
    "$MPCPUSH_BIN" --help | sed -n 's/^  \(MPCPUSH_[A-Z0-9_]*\) .*/\1/p' >"$WORK/keys"
    [[ -s $WORK/keys ]] || fail "mpcpush --help lists no MPCPUSH_ keys"
    while read -r key; do
        line=$("$MPCPUSH_BIN" --help | grep "^  $key ")
        default=
        [[ $line =~ \[default:\ ([^]]*)\]$ ]] && default=${BASH_REMATCH[1]}
        grep -qxF "#$key=$default" "$example" ||
            fail "mpcpush.conf.example: no line '#$key=$default'"
    done <"$WORK/keys"
    grep -o '^#MPCPUSH_[A-Z0-9_]*=' "$example" | sed 's/^#//; s/=$//' | sort >"$WORK/example-keys"
    sort -u "$WORK/example-keys" | cmp -s - "$WORK/example-keys" ||
        fail "mpcpush.conf.example: a key is listed twice"
    sort "$WORK/keys" | comm -13 - "$WORK/example-keys" | while read -r key; do
        echo "FAIL: mpcpush.conf.example: $key is not a key of mpcpush --help" >&2
        echo x >>"$WORK/stale"
    done
    [[ ! -f $WORK/stale ]] || failures=$((failures + 1))
    for path in $(grep -o '/usr/share/mpcpush/[^ ,]*' "$example" | sort -u); do
        [[ -e $dest$path ]] || fail "mpcpush.conf.example names $path, which is not installed"
    done
    MPCPUSH_DATABASE_URL=postgresql:///mpcpush "$MPCPUSH_BIN" --config "$example" check-config \
        >"$WORK/check.out" 2>&1 || { cat "$WORK/check.out" >&2; fail "check-config rejects the example"; }
    # Uncommented, the defaults must load too (they are the defaults, after all).
    sed 's/^#\(MPCPUSH_[A-Z0-9_]*=.\)/\1/' "$example" >"$WORK/uncommented.conf"
    MPCPUSH_DATABASE_URL=postgresql:///mpcpush "$MPCPUSH_BIN" --config "$WORK/uncommented.conf" \
        check-config >"$WORK/check2.out" 2>&1 ||
        { cat "$WORK/check2.out" >&2; fail "check-config rejects the example's defaults"; }
fi

# Other prefixes: the paths in the units follow (GNUInstallDirs' rules for sysconfdir).
for case in "/usr/local /usr/local/bin /usr/local/etc/mpcpush usr/local/lib/systemd/system" \
            "/opt/mpcpush /opt/mpcpush/bin /etc/opt/mpcpush/mpcpush opt/mpcpush/lib/systemd/system"; do
    read -r prefix bindir confdir unitdir <<<"$case"
    other=$WORK/prefix${prefix//\//-}
    mp_install "$other" "$prefix" mpcpush
    grep -qx "ExecStart=$bindir/mpcpush --config $confdir/mpcpush.conf run" "$other/$unitdir/mpcpush.service" ||
        fail "prefix $prefix: mpcpush.service does not run $bindir/mpcpush with $confdir/mpcpush.conf"
    [[ -x $other$bindir/mpcpush ]] || fail "prefix $prefix: $bindir/mpcpush missing"
    [[ -f $other$confdir/mpcpush.conf.example ]] || fail "prefix $prefix: $confdir/mpcpush.conf.example missing"
done

finish
