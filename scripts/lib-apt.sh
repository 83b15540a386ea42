# Sourced by scripts/deps-*.sh: apt_ensure PKG... installs the Debian packages
# that are missing (running `apt-get update` at most once per test run).
# Needs root (or sudo); says so in one line and returns non-zero otherwise.
# When another apt or dpkg holds the dpkg lock, it waits for it (up to
# RETRACER_APT_LOCK_WAIT seconds, default 600, saying so) instead of failing.

# apt_get ARGS...: $APT_SUDO apt-get ARGS, retried while the dpkg/apt locks are held
apt_get() {
  local wait=${RETRACER_APT_LOCK_WAIT:-600} start=$SECONDS out rc said=0
  while :; do
    out=$(DEBIAN_FRONTEND=noninteractive $APT_SUDO apt-get "$@" 2>&1)
    rc=$?
    [ $rc -eq 0 ] && return 0
    if ! grep -qiE "could not get lock|unable to (acquire|lock)|is another process using it" <<<"$out"; then
      printf '%s\n' "$out" >&2
      return $rc
    fi
    if [ $((SECONDS - start)) -ge "$wait" ]; then
      printf '%s\n' "$out" >&2
      echo "apt-get $1: the dpkg lock was still held after ${wait} s (RETRACER_APT_LOCK_WAIT)" >&2
      return $rc
    fi
    if [ $((SECONDS - start)) -ge "$said" ]; then
      echo "apt-get $1: another apt or dpkg holds the dpkg lock; waiting for it" \
           "($((SECONDS - start)) s so far, at most ${wait} s)" >&2
      said=$((said + 30))
    fi
    sleep 3
  done
}

apt_ensure() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  APT_SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then APT_SUDO="sudo -n"; else
      echo "retracer tests need the Debian packages ${missing[*]}: install them as root (apt-get install ${missing[*]})" >&2
      return 1
    fi
  fi
  if [ -z "${RETRACER_APT_UPDATED:-}" ]; then
    apt_get update -qq >/dev/null || { echo "apt-get update failed" >&2; return 1; }
    export RETRACER_APT_UPDATED=1
  fi
  echo "installing Debian packages: ${missing[*]}"
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "apt-get install ${missing[*]} failed" >&2; return 1; }
}
