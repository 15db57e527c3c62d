#!/bin/sh
# Entrypoint compatible with the official redis image's one.
set -e

# `docker run redis -flag` or `docker run redis /path/redis.conf` means redis-server.
case "$1" in
  -*|*.conf) set -- redis-server "$@" ;;
esac

if [ "$1" = "redis-server" ]; then
  # Debian's binary keeps protected mode on by default; the official image's does not.
  # Add the flag only when no config file or argument decides it already.
  decided=no
  for arg in "$@"; do
    case "$arg" in
      *protected-mode*) decided=yes ;;
      *.conf) if [ -r "$arg" ] && grep -qiE '^[[:space:]]*protected-mode' "$arg"; then decided=yes; fi ;;
    esac
  done
  if [ "$decided" = no ]; then
    set -- "$@" --protected-mode no
  fi
  if [ "$(id -u)" = "0" ]; then
    find . \! -user redis -exec chown redis '{}' + 2>/dev/null || true
    umask 0077
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
  umask 0077
fi

exec "$@"
