"""Debian chromium for Playwright: its path and the flags that work on this machine (../shared/NOTES.md)."""

CHROMIUM = "/usr/bin/chromium"
# No downloads, no sandbox as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # a synthetic camera (moving test pattern), allowed without a prompt: the webcam tests use it
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
