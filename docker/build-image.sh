#!/usr/bin/env bash
# Builds a Dockerfile of this repo without a Docker engine, using buildah (overlay storage where
# the kernel mounts overlayfs, else vfs; chroot isolation), against a local Debian bookworm base
# image made once with debootstrap; and runs, sizes and removes the images it built.
#
# Usage: docker/build-image.sh <Dockerfile> <context> <tag> [--target STAGE] [--smoke CMD...]
#        docker/build-image.sh --run <tag> CMD...
#        docker/build-image.sh --size <tag>
#        docker/build-image.sh --remove <tag>
#   --target STAGE  build that stage of the Dockerfile (as `docker build --target`), not the last;
#                   stages it does not need are skipped.
#   --smoke CMD...  after the build, run CMD inside the image (as the image's USER) and remove
#                   the container again; the exit status is CMD's.
#   --run           run CMD in a new container of an image built before (as its USER, on the
#                   host's network, so a server inside answers on 127.0.0.1); the container is
#                   removed when CMD ends; the exit status is CMD's.
#   --size          print the image's size as buildah shows it (e.g. "2.33 GB").
#   --remove        remove the image and the layers no other image uses.
#
# Settings (environment):
#   ROADMAP_LAB_IMAGE_CACHE  folder for the base image's root filesystem and buildah's image stores
#                            (default: ~/.cache/roadmap-lab/images)
#   ROADMAP_LAB_STORAGE_DRIVER  overlay or vfs (default: overlay when an overlayfs mount works in
#                            the cache folder, else vfs); each driver has its own store
#   DEBIAN_MIRROR            Debian mirror for debootstrap (default: debootstrap's own default)
#   BUILD_CA_BUNDLE          the CA bundle mounted into every RUN step as the image's system bundle,
#                            so RUN steps trust what this machine trusts (a proxy with its own CA,
#                            say); nothing is copied into the image (default: SSL_CERT_FILE, else
#                            /etc/ssl/certs/ca-certificates.crt, when the file exists)
#
# Needs root (debootstrap, chroot isolation): run as root, or with passwordless sudo, which the
# script then uses. As root it installs buildah and debootstrap with apt-get when they are missing.
# The base image stands in for python:3.11-slim: it has python3 (3.11), venv and pip, a `python`
# command, and no EXTERNALLY-MANAGED marker, so Dockerfiles written for python:3.11-slim work.
set -euo pipefail

readonly BASE_IMAGE_REF="localhost/roadmap-lab/python-base:bookworm"
readonly DEBIAN_SUITE="bookworm"
export PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"

log() { echo "build-image: $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '6,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[[ $# -ge 1 && ( "$1" == "-h" || "$1" == "--help" ) ]] && usage
mode=build
case "${1:-}" in
  --run) mode=run; [[ $# -ge 3 ]] || usage ;;
  --size|--remove) mode="${1#--}"; [[ $# -eq 2 ]] || usage ;;
  *) [[ $# -ge 3 ]] || usage ;;
esac
original_args=("$@")
dockerfile=""; context=""; target=""; smoke=()
if [[ $mode == build ]]; then
  dockerfile="$1"; context="$2"; tag="$3"; shift 3
  if [[ $# -gt 0 && "$1" == "--target" ]]; then
    [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || usage
    target="$2"; shift 2
  fi
  if [[ $# -gt 0 ]]; then
    [[ "$1" == "--smoke" && $# -ge 2 ]] || usage
    shift
    smoke=("$@")
  fi
  [[ -f "$dockerfile" ]] || die "no Dockerfile at $dockerfile"
  [[ -d "$context" ]] || die "no build context folder at $context"
else
  tag="$2"; shift 2
  smoke=("$@")
fi

if [[ $EUID -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    exec sudo -n env "PATH=$PATH" \
      "ROADMAP_LAB_IMAGE_CACHE=${ROADMAP_LAB_IMAGE_CACHE:-}" \
      "ROADMAP_LAB_STORAGE_DRIVER=${ROADMAP_LAB_STORAGE_DRIVER:-}" \
      "DEBIAN_MIRROR=${DEBIAN_MIRROR:-}" "BUILD_CA_BUNDLE=${BUILD_CA_BUNDLE:-${SSL_CERT_FILE:-}}" \
      bash "$0" "${original_args[@]}"
  fi
  die "needs root (debootstrap and buildah's chroot isolation): run it as root or with passwordless sudo"
fi

cache="${ROADMAP_LAB_IMAGE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/roadmap-lab/images}"
mkdir -p "$cache"

overlay_mounts() {  # whether the kernel mounts overlayfs on the cache folder's filesystem
  local probe status=1
  probe="$(mktemp -d "$cache/.overlay-probe.XXXXXX")"
  mkdir "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  if mount -t overlay overlay \
      -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" \
      2>/dev/null; then
    umount "$probe/merged"
    status=0
  fi
  rm -rf "$probe"
  return "$status"
}

# overlay shares layers between images, stages and containers; vfs copies the whole file tree
# for each of them (minutes and gigabytes per project image).
driver="${ROADMAP_LAB_STORAGE_DRIVER:-}"
if [[ -z "$driver" ]]; then
  if overlay_mounts; then driver=overlay; else driver=vfs; fi
fi
case "$driver" in
  overlay) store="$cache/storage-overlay"; runroot="$cache/run-overlay" ;;
  vfs) store="$cache/storage"; runroot="$cache/run" ;;
  *) die "ROADMAP_LAB_STORAGE_DRIVER must be overlay or vfs, not $driver" ;;
esac
# A store of our own per driver: a store is tied to the driver that made it, and a machine-wide
# store may use another.
bh() { buildah --storage-driver "$driver" --root "$store" --runroot "$runroot" "$@"; }

apt_updated=false
ensure_tool() {  # ensure_tool COMMAND PACKAGE...
  command -v "$1" >/dev/null 2>&1 && return
  command -v apt-get >/dev/null 2>&1 || die "$1 is missing and there is no apt-get to install it"
  log "installing ${*:2} with apt-get"
  if [[ $apt_updated == false ]]; then apt-get update -qq; apt_updated=true; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${@:2}" >/dev/null
  command -v "$1" >/dev/null 2>&1 || die "$1 is still missing after installing ${*:2}"
}

make_base_rootfs() {  # make_base_rootfs TARBALL
  local work rootfs
  ensure_tool debootstrap debootstrap debian-archive-keyring
  # Work folders of debootstraps that were killed (an hour is far longer than one takes).
  find "$cache" -maxdepth 1 -name '.rootfs.*' -mmin +60 -exec rm -rf {} +
  work="$(mktemp -d "$cache/.rootfs.XXXXXX")"
  rootfs="$work/rootfs"
  log "debootstrapping $DEBIAN_SUITE into $rootfs (once; a few minutes)"
  # Without DEBIAN_MIRROR the mirror argument is left out, so debootstrap uses its default.
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip \
    "$DEBIAN_SUITE" "$rootfs" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (log: $work/debootstrap.log)"; }
  # Behave like python:3.11-slim: a `python` command, pip installs allowed outside a venv.
  ln -sf python3 "$rootfs/usr/bin/python"
  [[ -e "$rootfs/usr/bin/pip" ]] || ln -sf pip3 "$rootfs/usr/bin/pip"
  rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" --numeric-owner -czf "$work/rootfs.tar.gz" .
  mv "$work/rootfs.tar.gz" "$1"
  rm -rf "$work"
}

ensure_base_image() {
  local tarball="$cache/python-base-$DEBIAN_SUITE.tar.gz" ctr
  bh inspect --type image "$BASE_IMAGE_REF" >/dev/null 2>&1 && return
  [[ -f "$tarball" ]] || make_base_rootfs "$tarball"
  log "importing $tarball as $BASE_IMAGE_REF ($driver storage)"
  ctr="$(bh from scratch)"
  bh add "$ctr" "$tarball" / >/dev/null
  bh config --env LANG=C.UTF-8 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd python3 "$ctr"
  bh commit --rm --quiet "$ctr" "$BASE_IMAGE_REF" >/dev/null
}

ensure_tool buildah buildah

# buildah's temporary files (a layer's tar while it is committed: gigabytes) in a folder per
# process under the cache, removed when the process ends; a killed one's by the next build.
tmp_root="$cache/tmp"
export TMPDIR="$tmp_root/$$"
mkdir -p "$TMPDIR"
trap 'rm -rf "$TMPDIR"' EXIT

remove_stale_tmp() {  # with the store's lock held
  local folder
  for folder in "$tmp_root"/*; do
    [[ -d "$folder" ]] || continue
    kill -0 "${folder##*/}" 2>/dev/null || rm -rf "$folder"
  done
}

# Containers left by a build or run that was killed hold whole layers (gigabytes each: a full
# disk failed the image tests once). Called with the store's lock held exclusively, so no build is
# running: every container is stale except a run's whose process is alive.
remove_stale_containers() {
  local id name pid
  while read -r id name; do
    if [[ "$name" =~ ^roadmap-run-([0-9]+)- ]]; then
      pid="${BASH_REMATCH[1]}"
      kill -0 "$pid" 2>/dev/null && continue
    fi
    log "removing container $name, left by a build or run that did not finish"
    bh rm "$id" >/dev/null || true
  done < <(bh containers --noheading --format '{{.ContainerID}} {{.ContainerName}}')
}

# The store's lock, held by a build from its start until its image is committed and smoke-tested.
# With overlay, builds share it (Pants runs the image tests side by side, and two builds use both
# cores: a build is mostly one process at a time); with vfs, a build holds it alone (every layer a
# full copy: a CI run once filled the disk building two images side by side). Clean-up and pruning
# take it alone, so they never take a running build's containers or layers.
exec {store_lock}>"$store.lock"
build_lock=-s
[[ $driver == overlay ]] || build_lock=-x

case $mode in
  size)
    bh images --noheading --format '{{.Size}}' "$tag"
    exit 0 ;;
  remove)
    if bh inspect --type image "$tag" >/dev/null 2>&1; then
      bh rmi --force "$tag" >/dev/null
    else
      log "no image $tag to remove"
    fi
    # Layers of intermediate stages that nothing uses now; while a build holds the store, the
    # next remove prunes instead (waiting would make a remove take as long as someone's build).
    if flock -x -n "$store_lock"; then
      remove_stale_containers
      remove_stale_tmp
      bh rmi --prune >/dev/null 2>&1 || true
    else
      log "a build holds the store: unused layers are pruned by the next remove"
    fi
    exit 0 ;;
  run)
    ctr="$(bh from --pull=never --name "roadmap-run-$$-$RANDOM" "$tag")"
    trap 'bh rm "$ctr" >/dev/null; rm -rf "$TMPDIR"' EXIT
    # chroot isolation keeps the host's network namespace: a server inside listens on the host.
    bh run --isolation chroot "$ctr" -- "${smoke[@]}"
    exit ;;
esac

# Alone in the store: clean up and make the base image, then take the build's lock (flock converts
# it). While other builds run, skip the clean-up (the next build or remove alone in the store does
# it): the first of them made the base image before it shared the lock.
if flock -x -n "$store_lock"; then
  remove_stale_containers
  remove_stale_tmp
  ensure_base_image
else
  log "waiting for the image store's lock (other builds hold it)"
fi
flock "$build_lock" "$store_lock"
if ! bh inspect --type image "$BASE_IMAGE_REF" >/dev/null 2>&1; then
  # The build that was to make it failed: make it alone (plain commands, so set -e stops here
  # on an error rather than commit a broken base image).
  flock -x "$store_lock"
  ensure_base_image
  flock "$build_lock" "$store_lock"
fi

build_args=(--isolation chroot --layers --force-rm --build-arg "BASE_IMAGE=$BASE_IMAGE_REF")
if [[ -n "$target" ]]; then
  build_args+=(--target "$target")
fi
ca_bundle="${BUILD_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
if [[ -n "$ca_bundle" && -f "$ca_bundle" ]]; then
  build_args+=(--volume "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
fi

# Build output goes to stderr: stdout carries only the smoke command's output.
log "building $tag from $dockerfile${target:+ (stage $target)} (context $context)"
bh bud "${build_args[@]}" -f "$dockerfile" -t "$tag" "$context" >&2

if [[ ${#smoke[@]} -gt 0 ]]; then
  ctr="$(bh from --pull=never --name "roadmap-run-$$-$RANDOM" "$tag")"
  trap 'bh rm "$ctr" >/dev/null; rm -rf "$TMPDIR"' EXIT
  log "running in $tag: ${smoke[*]}"
  bh run --isolation chroot "$ctr" -- "${smoke[@]}"
fi
