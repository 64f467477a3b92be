#!/usr/bin/env bash
# Builds (once) a real two-layer image with umoci, nobody else's code in its making: a root filesystem as
# the base layer, and a changed copy of it as the second (umoci's own repack of the merged tree).
#   two-layer-image.sh <base tree> <changed tree> <out layout> <out docker archive>
# Output: an OCI layout with tags `base` and `apt`, and the `apt` image as a docker save archive written
# by skopeo, named example.com/apt:latest.
set -euo pipefail
base=$1 changed=$2 out=$3 docker=$4
[ -f "$out/index.json" ] && [ -f "$docker" ] && exit 0
work=$(mktemp -d "$(dirname "$out")/image-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
layout=$work/layout
umoci init --layout "$layout"
umoci new --image "$layout:base"
umoci unpack --image "$layout:base" "$work/b" >/dev/null
rm -rf "$work/b/rootfs" && cp -a "$base" "$work/b/rootfs"
umoci repack --image "$layout:base" "$work/b"
umoci unpack --image "$layout:base" "$work/a" >/dev/null
rm -rf "$work/a/rootfs" && cp -a "$changed" "$work/a/rootfs"
umoci repack --image "$layout:apt" "$work/a"
umoci gc --layout "$layout"
skopeo copy --quiet "oci:$layout:apt" "docker-archive:$work/docker.tar:example.com/apt:latest"
rm -rf "$out"
mv "$layout" "$out"
mv "$work/docker.tar" "$docker"
