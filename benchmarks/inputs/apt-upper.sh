#!/usr/bin/env bash
# Builds (once) a real container change: the overlayfs upper left by `apt-get install python3 curl` run in
# a chroot on a kernel overlay over the minbase root filesystem. Output: $CACHE/apt-upper (the upper) and
# $CACHE/apt-merged (the merged tree, copied out, for two-tree diffs).
set -euo pipefail
CACHE=${STRATA_BENCH_CACHE:-/var/cache/strata}
lower=$CACHE/minbase
[ -d "$CACHE/apt-upper" ] && [ -d "$CACHE/apt-merged" ] && exit 0
[ -f "$lower/etc/os-release" ] || { echo "apt-upper: build the minbase rootfs first" >&2; exit 1; }
work=$(mktemp -d "$CACHE/apt-build.XXXXXX")
mkdir -p "$work/upper" "$work/work" "$work/merged"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work,index=off,redirect_dir=off,metacopy=off" "$work/merged"
cleanup() { umount -R "$work/merged" 2>/dev/null || true; }
trap cleanup EXIT
mount -t proc proc "$work/merged/proc"
mount --bind /dev "$work/merged/dev"
cp /etc/resolv.conf "$work/merged/etc/resolv.conf"
chroot "$work/merged" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 curl >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*'
umount "$work/merged/proc" "$work/merged/dev"
rm -f "$work/merged/etc/resolv.conf"
cp -a "$work/merged" "$CACHE/apt-merged.tmp"
cleanup
trap - EXIT
mv "$work/upper" "$CACHE/apt-upper"
mv "$CACHE/apt-merged.tmp" "$CACHE/apt-merged"
rm -rf "$work"
