#!/usr/bin/env bash
# A Debian bookworm base image with python3 from Debian's own packages, for machines where no image
# registry answers (this one): docker build --build-arg BASE_IMAGE=mhist-base:bookworm. It stands in
# for python:3.11-slim-bookworm (the Dockerfiles' default, what AWS builds on): Debian 12, Python 3.11.
# Kept as a tarball in $MHIST_CACHE (default ~/.cache/mhist) for the next run, which never needs it.
# Needs root (debootstrap) and a Docker engine.  Usage: .ci/base-image.sh [tag]
set -euo pipefail
tag="${1:-mhist-base:bookworm}"
cache="${MHIST_CACHE:-$HOME/.cache/mhist}/base-bookworm.tar"
docker=$(command -v /usr/bin/docker || command -v docker)
if "$docker" image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
if [ -s "$cache" ] && "$docker" load -q -i "$cache" >/dev/null 2>&1 && "$docker" image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "base image: debootstrap bookworm into $work (about a minute)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/root" \
  http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work"/root/var/lib/apt/lists/* "$work"/root/usr/share/doc/* "$work"/root/usr/share/man/*
tar -C "$work/root" -c . | "$docker" import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$tag" >/dev/null
mkdir -p "$(dirname "$cache")"
if "$docker" save -o "$cache.partial" "$tag"; then mv "$cache.partial" "$cache"; fi
echo "base image: $tag"
