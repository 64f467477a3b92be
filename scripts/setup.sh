#!/usr/bin/env bash
# Installs everything strata's build, tests and benchmarks need on a fresh Debian machine with Node 20:
# the oracles and peers (GNU tar, umoci, skopeo, podman, containerd, attr tools, Go) and ISA-L from Debian,
# pnpm from npm, then the workspace, built.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=()
command -v umoci >/dev/null || apt_packages+=(umoci)
command -v skopeo >/dev/null || apt_packages+=(skopeo)
command -v podman >/dev/null || apt_packages+=(podman)
command -v containerd >/dev/null || apt_packages+=(containerd)
command -v getfattr >/dev/null || apt_packages+=(attr)
[ -x /usr/bin/time ] || apt_packages+=(time)
command -v tar >/dev/null || apt_packages+=(tar)
command -v openssl >/dev/null || apt_packages+=(openssl)
command -v docker-registry >/dev/null || apt_packages+=(docker-registry)
command -v htpasswd >/dev/null || apt_packages+=(apache2-utils)
command -v buildah >/dev/null || apt_packages+=(buildah)
# RUN's runtime (crun works too); the limits test runs buildah's steps through runc as strata runs its own.
command -v runc >/dev/null || apt_packages+=(runc)
command -v python3 >/dev/null || apt_packages+=(python3)
# Python's test suite ships tarfile's corpus of tricky archives (testtar.tar), an oracle beside Go's.
py_version=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3.11)
compgen -G '/usr/lib/python3*/test/testtar.tar' >/dev/null || apt_packages+=("libpython${py_version}-testsuite")
# Go's archive/tar (the reader under containerd and moby) and its corpus of tricky archives, an oracle.
command -v go >/dev/null || apt_packages+=(golang-go)
# The durability tests read a child's fdatasync and rename calls from strace.
command -v strace >/dev/null || apt_packages+=(strace)
# ISA-L's inflate reads gzip layers at about twice zlib's speed (the addon loads it if present).
[ -f /usr/include/isa-l/igzip_lib.h ] || apt_packages+=(libisal-dev)
# OpenSSH's agent answers the forwarded socket of RUN --mount=type=ssh.
command -v ssh-agent >/dev/null || apt_packages+=(openssh-client)
# ADD of a git repository runs git (as BuildKit's git source does), and its tests make repositories with it.
command -v git >/dev/null || apt_packages+=(git)
# ... and over ssh through the build's agent: its tests serve a repository with OpenSSH's server.
[ -x /usr/sbin/sshd ] || apt_packages+=(openssh-server)
# ADD unpacks xz and bzip2 archives through these tools, as BuildKit does.
command -v xz >/dev/null || apt_packages+=(xz-utils)
command -v bzip2 >/dev/null || apt_packages+=(bzip2)
# Compressed layer tarballs as trees are tested on zstd's own compressor.
command -v zstd >/dev/null || apt_packages+=(zstd)
# RUN for another platform goes through the emulator the host registers (as BuildKit's does): QEMU's.
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || apt_packages+=(qemu-user-static)
command -v update-binfmts >/dev/null || apt_packages+=(binfmt-support)
# RUN's seccomp test builds a static probe (libc6-dev has the static C library).
command -v gcc >/dev/null || apt_packages+=(gcc)
dpkg -s libc6-dev >/dev/null 2>&1 || apt_packages+=(libc6-dev)
# debootstrap builds the real root filesystem (Debian minbase) that image tests and benchmarks start from.
command -v debootstrap >/dev/null || apt_packages+=(debootstrap)
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # No package starts a service (openssh-server would listen on every address): the tests start their own
    # servers, on 127.0.0.1 only.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # One index that fails (a mirror mid-sync) fails the whole update; the install says if it needed that one.
    apt-get update -qq || echo "setup: apt-get update could not fetch every index; installing from those it did" >&2
    apt-get install -y -qq "${apt_packages[@]}" >/dev/null
  else
    echo "setup: not root, cannot install ${apt_packages[*]}; oracle tests need them" >&2
  fi
fi

# The kernel forgets binfmt_misc handlers at a reboot: registered again where the packages are there.
if [ "$(id -u)" = 0 ] && command -v update-binfmts >/dev/null && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true # where the package's trigger did not run
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true # (importing may have enabled it already)
fi

command -v pnpm >/dev/null || npm install -g pnpm@10 >/dev/null
pnpm install --frozen-lockfile --reporter=silent
pnpm -s build
