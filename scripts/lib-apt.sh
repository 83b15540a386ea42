# Sourced by scripts/deps-*.sh: apt_ensure PKG... installs the Debian packages
# that are missing (running `apt-get update` at most once per test run).
# Needs root (or sudo); says so in one line and returns non-zero otherwise.
apt_ensure() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
      echo "retracer tests need the Debian packages ${missing[*]}: install them as root (apt-get install ${missing[*]})" >&2
      return 1
    fi
  fi
  if [ -z "${RETRACER_APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq >/dev/null || { echo "apt-get update failed" >&2; return 1; }
    export RETRACER_APT_UPDATED=1
  fi
  echo "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "apt-get install ${missing[*]} failed" >&2; return 1; }
}
