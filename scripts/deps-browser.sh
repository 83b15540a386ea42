# Sourced by scripts/test.sh: the browser tests of the view page (tests/test_view_browser.py)
# drive Debian's chromium with Playwright for Python. Playwright must never download a
# browser of its own. Once the test command has installed chromium, the browser tests
# fail (rather than skip) when it is missing.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export RETRACER_REQUIRE_BROWSER=1
export RETRACER_CHROMIUM="${RETRACER_CHROMIUM:-/usr/bin/chromium}"
apt_ensure chromium
