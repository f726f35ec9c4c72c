#!/usr/bin/env bash
# apt-install.sh PACKAGE...: install Debian packages quietly without starting their services (root only).
#
# A policy-rc.d that says "no" is in place while apt-get runs, so a package's maintainer scripts start no
# system service of their own (the dockerd with the default bridge, the registry on :5000); it is removed again
# when this script made it. Exits with apt-get's status.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
fi
rc=0
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } || rc=$?
if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
exit "$rc"
