#!/usr/bin/env bash
# Build an offline stand-in for the official python:X.Y.Z-slim-bookworm image.
#
#   scripts/standin-base.sh [PYTHON]        (default: python3 on PATH)
#
# No container registry is reachable on CI machines, so the base image that
# reproduced environments build FROM is made locally: a Debian bookworm minbase
# root (debootstrap, from the mirror this machine's apt uses) plus a copy of
# PYTHON's installation prefix in /usr/local, the way the official image lays it
# out.  The image is tagged python:X.Y.Z-slim-bookworm, X.Y.Z being PYTHON's own
# full version, and labelled org.jupyter-yolosnap.standin=1.  When an image with
# that tag exists already (a stand-in or the real thing) nothing is built.
#
# Environment:
#   YOLOSNAP_STANDIN_MIRROR   Debian mirror for debootstrap (default: read from apt's sources)
#   YOLOSNAP_STANDIN_TMP      parent folder of the temporary root (default /var/tmp)
set -euo pipefail

case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac

die() { echo "standin-base: $*" >&2; exit 1; }
log() { echo "standin-base: $*" >&2; }

PY=${1:-python3}
command -v "$PY" >/dev/null 2>&1 || die "no Python interpreter '$PY'"
command -v docker >/dev/null 2>&1 || die "no docker client; run scripts/engine-up.sh"
docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/engine-up.sh"

# Everything about the interpreter, in one call.  base_prefix, not prefix: a
# venv's interpreter is the base interpreter.
info=$("$PY" - <<'EOF'
import platform, sys, sysconfig
print(platform.python_version())
print(sys.base_prefix)
print("%d.%d" % sys.version_info[:2])
print(sysconfig.get_config_var("LDLIBRARY") or "")
print(sysconfig.get_config_var("MULTIARCH") or "")
EOF
) || die "cannot run $PY"
{ read -r VERSION; read -r PREFIX; read -r XY; read -r LDLIBRARY; read -r MULTIARCH; } <<<"$info"
TAG="python:${VERSION}-slim-bookworm"
LABEL="org.jupyter-yolosnap.standin=1"

if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "$TAG"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "building $TAG needs root (debootstrap, chroot)"

# One build at a time on this machine; whoever waited finds the image made.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${YOLOSNAP_STANDIN_TMP:-/var/tmp}/yolosnap-standin.lock"
    flock 9
    if docker image inspect "$TAG" >/dev/null 2>&1; then
        echo "$TAG"
        exit 0
    fi
fi
case "$PREFIX" in
    / | /usr | /usr/) die "$PY lives in $PREFIX (a distribution's Python, not a self-contained prefix); use a pyenv or python.org build" ;;
esac
[ -x "$PREFIX/bin/python$XY" ] || die "no $PREFIX/bin/python$XY (sys.base_prefix of $PY)"
[ -d "$PREFIX/lib/python$XY" ] || die "no standard library at $PREFIX/lib/python$XY"
case "$LDLIBRARY" in
    *.so*) ;;
    *) log "warning: $PY is not a shared-library build ($LDLIBRARY); copying it anyway" ;;
esac
[ "$(uname -m)" = x86_64 ] || [ "$(uname -m)" = aarch64 ] || log "warning: untested architecture $(uname -m)"

# The mirror apt uses for bookworm: the first deb822 entry whose Suites name
# "bookworm" itself (not bookworm-security / -updates), else sources.list.
find_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush() {
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && suites ~ /(^|[ \t])bookworm([ \t]|$)/ && uris != "" && !done) {
                    split(uris, u, /[ \t]+/); print u[1]; done = 1
                }
                types = ""; suites = ""; uris = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^Types:/  { sub(/^Types:[ \t]*/, "");  types = $0 }
            /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
            /^URIs:/   { sub(/^URIs:[ \t]*/, "");   uris = $0 }
            END { flush() }
        ' "$f" | head -n 1
    done | head -n 1
}
find_mirror_list() {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" {
                 i = 2
                 if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
                 if ($(i + 1) == "bookworm") { print $i; exit }
             }'
}
MIRROR=${YOLOSNAP_STANDIN_MIRROR:-}
[ -n "$MIRROR" ] || MIRROR=$(find_mirror || true)
[ -n "$MIRROR" ] || MIRROR=$(find_mirror_list || true)
[ -n "$MIRROR" ] || die "no bookworm mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list (set YOLOSNAP_STANDIN_MIRROR)"

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
        die "apt-get install debootstrap failed"
fi

# Runtime libraries the interpreter's lib-dynload modules link against (the set
# the official slim image carries; _tkinter is left out there and here).
PACKAGES=ca-certificates,libssl3,libffi8,libsqlite3-0,zlib1g,libbz2-1.0,liblzma5,libreadline8,libncursesw6,libexpat1,libuuid1,libnsl2

start=$(date +%s)
ROOT=$(mktemp -d "${YOLOSNAP_STANDIN_TMP:-/var/tmp}/yolosnap-standin.XXXXXX")
cleanup() {
    # debootstrap or chroot may leave proc/sys/dev mounted under ROOT when they
    # fail: unmount (deepest first) before removing, and never cross into
    # another file system.
    local m
    if [ -d "$ROOT" ]; then
        awk -v r="$ROOT/" 'index($2 "/", r) == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done
        rm -rf --one-file-system "$ROOT"
    fi
    rm -f "$ROOT.debootstrap.log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building $TAG from $PREFIX (debootstrap bookworm, minbase)"
if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOT" "$MIRROR" \
        >"$ROOT.debootstrap.log" 2>&1; then
    tail -n 20 "$ROOT.debootstrap.log" >&2
    rm -f "$ROOT.debootstrap.log"
    die "debootstrap failed (mirror $MIRROR)"
fi
rm -f "$ROOT.debootstrap.log"

# Trim the Debian root the way the slim images are: apt lists, caches, docs.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
    "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
    "$ROOT"/usr/share/info/* "$ROOT"/usr/share/locale/*
# apt inside the image uses the same sources as this machine's apt (read now,
# from its configuration), so that apt-get works in builds on network "host".
if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    rm -f "$ROOT/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/*.sources "$ROOT/etc/apt/sources.list.d/"
elif [ -s /etc/apt/sources.list ]; then
    cp /etc/apt/sources.list "$ROOT/etc/apt/sources.list"
fi
: >"$ROOT/etc/resolv.conf"
: >"$ROOT/etc/hostname"

# The interpreter's prefix, into /usr/local.  site-packages keeps pip only;
# test suites, the static libpython, compiled bytecode for -O/-OO, _tkinter
# (its Tk libraries are not in a slim image) and share/ (man pages) stay out.
DEST="$ROOT/usr/local"
mkdir -p "$DEST/bin" "$DEST/lib" "$DEST/include" "$DEST/share"
SITE="lib/python$XY/site-packages"
tar -C "$PREFIX" -cf - \
    --exclude="./$SITE" \
    --exclude="./lib/python$XY/test" \
    --exclude="./lib/python$XY/idlelib/idle_test" \
    --exclude="./lib/python$XY/tkinter/test" \
    --exclude="./lib/python$XY/lib2to3/tests" \
    --exclude="./lib/python$XY/ctypes/test" \
    --exclude="./lib/python$XY/distutils/tests" \
    --exclude="./lib/python$XY/unittest/test" \
    --exclude="./lib/python$XY/sqlite3/test" \
    --exclude="./lib/python$XY/lib-dynload/_tkinter.*" \
    --exclude='*.opt-1.pyc' --exclude='*.opt-2.pyc' --exclude='*.pyo' \
    --exclude='libpython*.a' \
    ./lib $( [ -d "$PREFIX/include" ] && echo ./include ) | tar -C "$DEST" -xf -
mkdir -p "$DEST/$SITE"
[ -f "$PREFIX/$SITE/README.txt" ] && cp -p "$PREFIX/$SITE/README.txt" "$DEST/$SITE/"
# pip itself, with its metadata (pip list / pip freeze --all see it).
pips=$(cd "$PREFIX/$SITE" && ls -d pip pip-*.dist-info 2>/dev/null || true)
[ -n "$pips" ] || die "no pip in $PREFIX/$SITE"
(cd "$PREFIX/$SITE" && tar -cf - --exclude='*.opt-1.pyc' --exclude='*.opt-2.pyc' $pips) | tar -C "$DEST/$SITE" -xf -

# bin: the interpreter and the standard library's own scripts.  Shebangs that
# name the old prefix now name /usr/local/bin/pythonX.Y.
cp -p "$PREFIX/bin/python$XY" "$DEST/bin/"
for f in "$PREFIX"/bin/python"$XY"-config "$PREFIX"/bin/pydoc"$XY" "$PREFIX"/bin/2to3-"$XY" "$PREFIX"/bin/idle"$XY"; do
    [ -f "$f" ] || continue
    cp -p "$f" "$DEST/bin/"
    sed -i "1s|^#!.*python.*$|#!/usr/local/bin/python$XY|" "$DEST/bin/$(basename "$f")"
done
for pair in python:python$XY python3:python$XY python3-config:python$XY-config python-config:python$XY-config \
            pydoc:pydoc$XY pydoc3:pydoc$XY 2to3:2to3-$XY idle:idle$XY idle3:idle$XY; do
    link=${pair%%:*} target=${pair#*:}
    [ -e "$DEST/bin/$target" ] && ln -sf "$target" "$DEST/bin/$link"
done
for name in pip pip3 "pip$XY"; do
    cat >"$DEST/bin/$name" <<EOF
#!/usr/local/bin/python$XY
# -*- coding: utf-8 -*-
import re
import sys
from pip._internal.cli.main import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\.pyw|\.exe)?\$', '', sys.argv[0])
    sys.exit(main())
EOF
    chmod 755 "$DEST/bin/$name"
done

# Files that spell out the old prefix (build configuration): /usr/local.  Their
# stale bytecode goes; it is compiled again below, inside the root.
grep -rlsF --null "$PREFIX" \
    "$DEST/lib/python$XY"/_sysconfigdata*.py "$DEST/lib/python$XY"/config-* \
    "$DEST/lib/pkgconfig" "$DEST/bin/python$XY-config" 2>/dev/null |
    xargs -0 -r sed -i "s|$PREFIX|/usr/local|g"
rm -f "$DEST/lib/python$XY"/__pycache__/_sysconfigdata*.pyc

# Shared libraries in /usr/local/lib (libpythonX.Y.so) through ld.so.conf: the
# interpreter's RUNPATH names the old prefix, which is not in the image.
echo /usr/local/lib >"$ROOT/etc/ld.so.conf.d/usr-local.conf"
chroot "$ROOT" /sbin/ldconfig
chroot "$ROOT" /usr/local/bin/python3 -c 'import sys' ||
    die "the copied interpreter does not start inside the root"
chroot "$ROOT" /usr/local/bin/python3 -m compileall -q "/usr/local/lib/python$XY"/_sysconfigdata*.py >/dev/null
rm -rf "$ROOT"/root/.cache "$ROOT"/tmp/* 2>/dev/null || true

log "importing $TAG"
tar -C "$ROOT" --numeric-owner -cf - . |
    docker import \
        --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "ENV PYTHON_VERSION=$VERSION" \
        --change "LABEL $LABEL" \
        --change 'CMD ["python3"]' \
        - "$TAG" >/dev/null ||
    die "docker import failed"

size=$(docker image inspect -f '{{.Size}}' "$TAG")
log "built $TAG in $(( $(date +%s) - start ))s, $(( size / 1000000 )) MB"
echo "$TAG"
