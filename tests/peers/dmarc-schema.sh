#!/usr/bin/env bash
# RFC 7489's XML schema for DMARC aggregate reports (Appendix C), as
# Debian ships it in Mail::DMARC (libmail-dmarc-perl: share/rua-schema.xsd).
# The package is downloaded and extracted under target/peers/mail-dmarc,
# not installed. The tests validate Ferry's reports against it with
# xmllint (libxml2-utils).
# Usage:
#   dmarc-schema.sh fetch   # extract it (once)
#   dmarc-schema.sh path    # print where it is; fails when it is not there
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
DIR=$REPO/target/peers/mail-dmarc
XSD=$DIR/root/usr/share/perl5/auto/share/dist/Mail-DMARC/rua-schema.xsd

case $1 in
  fetch)
    [ -f "$XSD" ] && exit 0
    mkdir -p "$DIR/debs"
    cd "$DIR/debs"
    apt-get download libmail-dmarc-perl >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null
      apt-get download libmail-dmarc-perl 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
    }
    for d in ./*.deb; do dpkg-deb -x "$d" "$DIR/root"; done
    [ -f "$XSD" ]
    ;;
  path)
    [ -f "$XSD" ] && echo "$XSD"
    ;;
  *)
    echo "usage: $0 fetch|path" >&2
    exit 2
    ;;
esac
