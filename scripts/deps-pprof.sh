# Sourced by scripts/test.sh (apt_ensure comes from scripts/lib-apt.sh): what the
# export tests need from Debian.
#  - zlib1g-dev: zlib's header, to build retracer._export (pprof output is gzipped);
#  - golang-go + golang-github-google-pprof-dev: the pprof tool's Go source, built
#    here offline (GOPATH mode over /usr/share/gocode, no module proxy) into
#    .venvs/bin/pprof, which tests/test_export.py runs on the pprof export.
apt_ensure zlib1g-dev golang-go golang-github-google-pprof-dev || return 1
if [ ! -x .venvs/bin/pprof ] || [ /usr/share/gocode/src/github.com/google/pprof/pprof.go -nt .venvs/bin/pprof ]; then
  echo "building the pprof tool (offline, from golang-github-google-pprof-dev)"
  mkdir -p .venvs/bin
  GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS= GOCACHE="$PWD/.venvs/go-cache" \
    go build -o .venvs/bin/pprof github.com/google/pprof || { echo "building pprof failed" >&2; return 1; }
fi
