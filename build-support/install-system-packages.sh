#!/usr/bin/env bash
# Installs the Debian packages of build-support/system-packages.txt that are missing.
#
# Usage: build-support/install-system-packages.sh [--check] [NAME...]
#   NAME     only the entries needed by these folders (shared, showcase, tests, a project's
#            name or folder such as projects/ml-cicd, a loop's folder such as loops/mlops);
#            default: every entry
#   --check  install nothing: list what is missing and exit 1 if anything is
#
# Each entry's check command decides whether it is present. Missing packages are installed with
# apt-get (through passwordless sudo when not root); a package still missing afterwards, or no
# apt-get to install it with, is an error naming the package.
#
# SYSTEM_PACKAGES_LIST: the list to read instead (the tests use fixtures); relative to the repo root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly LIST="${SYSTEM_PACKAGES_LIST:-build-support/system-packages.txt}"
export PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"

log() { echo "system-packages: $*" >&2; }

check_only=false
wanted=()
for arg in "$@"; do
  case "$arg" in
    --check) check_only=true ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    -*) log "unknown option $arg"; exit 2 ;;
    *) wanted+=("${arg#projects/}") ;;  # the list names a project by its name
  esac
done

# A NAME must be a folder that can need packages: a typo would otherwise install nothing, silently.
for name in ${wanted[@]+"${wanted[@]}"}; do
  case "$name" in
    shared|showcase|tests) ;;
    loops/*) [[ -d "$name" ]] || { log "unknown NAME $name: no such folder of loops/"; exit 2; } ;;
    *) [[ -d "projects/$name" ]] || { log "unknown NAME $name: shared, showcase, tests, a folder of projects/ or loops/"; exit 2; } ;;
  esac
done

is_wanted() {  # is_wanted "name, name, ..."
  local users=",${1// /},"
  ((${#wanted[@]} == 0)) && return 0
  local name
  for name in "${wanted[@]}"; do
    [[ "$users" == *",$name,"* ]] && return 0
  done
  return 1
}

[[ -f "$LIST" ]] || { log "no package list at $LIST"; exit 2; }

declare -A check_of=()
packages=()
while IFS='|' read -r package users check; do
  package="${package//[[:space:]]/}"
  [[ -z "$package" || "$package" == \#* ]] && continue
  if [[ -z "${check// /}" ]]; then log "$LIST: $package has no check command"; exit 2; fi
  is_wanted "$users" || continue
  packages+=("$package")
  check_of[$package]="$check"
done < "$LIST"

present() { bash -c "${check_of[$1]}" >/dev/null 2>&1; }

missing=()
for package in ${packages[@]+"${packages[@]}"}; do
  present "$package" || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0
if [[ "$check_only" == true ]]; then
  log "missing: ${missing[*]}"
  exit 1
fi

command -v apt-get >/dev/null 2>&1 || { log "missing ${missing[*]} and no apt-get to install them"; exit 1; }
sudo_cmd=()
if [[ "$(id -u)" != 0 ]]; then
  sudo -n true 2>/dev/null || { log "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or allow passwordless sudo"; exit 1; }
  sudo_cmd=(sudo -n)
fi
log "installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
still=()
for package in "${missing[@]}"; do
  present "$package" || still+=("$package")
done
if ((${#still[@]})); then
  log "still missing after apt-get install: ${still[*]} (see the checks in $LIST)"
  exit 1
fi
