# Helpers for the ops test scripts (sourced, bash).
# Every script takes: CMAKE BUILD_DIR SOURCE_DIR MPCPUSH_BIN [EMULATOR_BIN]

set -euo pipefail

CMAKE=$1
BUILD_DIR=$2
SOURCE_DIR=$3
MPCPUSH_BIN=$4
EMULATOR_BIN=${5:-}

UNITS=(mpcpush.service mpcpush-migrate.service mpcpush-receiver@.service
       mpcpush-dispatcher@.service)
SERVICES=(mpcpush.service mpcpush-receiver@.service mpcpush-dispatcher@.service)

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
skip() { echo "SKIP: $*"; exit 77; }
finish() {
    if ((failures)); then
        echo "$failures check(s) failed" >&2
        exit 1
    fi
    echo "all checks passed"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mpcpush-ops.XXXXXX")
cleanup() { [[ -n ${MPCPUSH_KEEP_TEST_DIR:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT

[[ -x $MPCPUSH_BIN ]] || { echo "FAIL: $MPCPUSH_BIN is not built" >&2; exit 1; }

# mp_install DESTDIR PREFIX [COMPONENT]: `cmake --install` of the build tree, as a packager
# would, into DESTDIR. Without COMPONENT: everything built.
mp_install() {
    local destdir=$1 prefix=$2 component=${3:-}
    local args=(--install "$BUILD_DIR" --prefix "$prefix")
    [[ -n $component ]] && args+=(--component "$component")
    if ! DESTDIR=$destdir "$CMAKE" "${args[@]}" >"$WORK/install.log" 2>&1; then
        cat "$WORK/install.log" >&2
        echo "FAIL: cmake ${args[*]} (DESTDIR=$destdir) failed" >&2
        exit 1
    fi
}

need_systemd_analyze() {
    command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
}
