# Shared by scripts/run, scripts/test and scripts/bench: install what is missing, build, and
# find PostgreSQL. Source it; it sets TOP and BUILD.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${MPCPUSH_BUILD_DIR:-$TOP/build}

MP_PACKAGES=(build-essential cmake pkg-config curl openssl ca-certificates
    libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libjansson-dev libjwt-dev libpq-dev
    libcmocka-dev libnghttp2-dev libsystemd-dev nghttp2-client postgresql-15 postgresql-client-15
    clang libclang-rt-14-dev)

mp_say() { printf '==> %s\n' "$*" >&2; }

mp_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages that are not installed yet (nothing when all are present).
mp_install_deps() {
    local missing=() p
    for p in "${MP_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    mp_say "installing ${missing[*]}"
    mp_as_root apt-get update -qq
    mp_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# Configures and builds into $BUILD; extra arguments go to the configure step.
mp_build() {
    mp_say "building in $BUILD"
    cmake -S "$TOP" -B "$BUILD" -DCMAKE_BUILD_TYPE="${MPCPUSH_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
    cmake --build "$BUILD" -j "$(nproc)" >/dev/null
}
