#!/usr/bin/env bash
# What the registry tests (tests/test_share_registry.py) need on the machine: Debian's docker-registry
# (/usr/bin/docker-registry, the CNCF distribution registry) and apache2-utils (htpasswd, for the bcrypt
# password file of the authenticated registry). Idempotent: when both are there, this does nothing.
#
# Installs only (root on Debian); it starts no registry service: each test starts its own registry on
# 127.0.0.1 with its storage in the test's temporary folder, and stops it. The package's maintainer scripts are
# kept from starting the system service (apt-install.sh).
set -euo pipefail

case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac

die() { echo "registry-up: $*" >&2; exit 1; }

need=()
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
[ "${#need[@]}" -eq 0 ] && exit 0

[ "$(id -u)" -eq 0 ] || die "missing ${need[*]} and not root: install them (apt-get install ${need[*]}) and rerun"
command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} and no apt-get here: install them by hand"

echo "registry-up: installing ${need[*]} from Debian" >&2
rc=0
bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" "${need[@]}" || rc=$?
[ "$rc" -eq 0 ] || die "apt-get install ${need[*]} failed (exit $rc)"
[ -x /usr/bin/docker-registry ] || die "docker-registry is installed but /usr/bin/docker-registry is missing"
command -v htpasswd >/dev/null 2>&1 || die "apache2-utils is installed but htpasswd is not on PATH"
