"""Open a gallery page in headless Chromium and report how its images loaded.

Drives Debian's chromium through the DevTools protocol over a pipe
(--remote-debugging-pipe: JSON messages separated by NUL bytes on file
descriptors 3 and 4), so nothing beyond Python's standard library and the
browser is needed.

The page's images are lazy; after the load event the check switches every
<img> to eager loading and waits until each has loaded or failed, then
reports naturalWidth/naturalHeight per image and saves a screenshot of the
top of the page.

    python3 gallery_check.py PAGE.html SCREENSHOT.png   # prints JSON
"""

import base64
import json
import os
import pathlib
import select
import shutil
import subprocess
import sys
import tempfile
import time

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--allow-file-access-from-files",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
]

# Runs in the page: make every image eager, wait for each to settle, report.
# With click_copy, the first copy-link button is clicked and its state
# (data-state, set by the page's script) reported once it has one.
COLLECT = r"""
(async (clickCopy) => {
  const imgs = Array.from(document.querySelectorAll('img'));
  const before = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  for (const i of imgs) i.loading = 'eager';
  await Promise.all(imgs.map(i => (i.complete && i.naturalWidth > 0)
    ? null
    : new Promise(res => {
        i.addEventListener('load', res, {once: true});
        i.addEventListener('error', res, {once: true});
        if (i.complete && i.naturalWidth === 0 && i.currentSrc) res();
      })));
  window.scrollTo(0, 0);
  let copy = null;
  const button = document.querySelector('button.copy');
  if (clickCopy && button) {
    button.click();
    for (let k = 0; k < 100 && !button.dataset.state; k++)
      await new Promise(r => setTimeout(r, 50));
    copy = {state: button.dataset.state || null, url: button.dataset.url,
            text: button.textContent};
  }
  const hrefs = sel => Array.from(document.querySelectorAll(sel))
                            .map(a => a.href);
  const one = sel => { const a = document.querySelector(sel);
                       return a ? a.href : null; };
  return JSON.stringify({
    title: document.title,
    h1: (document.querySelector('h1') || {}).textContent || '',
    figures: document.querySelectorAll('figure').length,
    loaded_before_eager: before,
    captions: Array.from(document.querySelectorAll('figure'))
                   .map(f => (f.querySelector('.name') ||
                              f.querySelector('figcaption') || {})
                             .textContent),
    hrefs: hrefs('figure a'),
    placeholders: document.querySelectorAll('figure .wait').length,
    infos: Array.from(document.querySelectorAll('figure .info'))
                .map(c => c.textContent),
    crumbs: hrefs('a.crumb'),
    folders: Array.from(document.querySelectorAll('a.folder'))
                  .map(a => ({text: a.textContent, href: a.href})),
    next: one('a[rel=next]'),
    prev: one('a[rel=prev]'),
    scripts: document.querySelectorAll('script').length,
    copy_ready: document.documentElement.dataset.copy || null,
    copy: copy,
    csp: (document.querySelector(
            'meta[http-equiv="Content-Security-Policy"]') || {}).content
         || null,
    images: imgs.map(i => ({src: i.src, alt: i.alt,
                            srcset: i.getAttribute('srcset'),
                            currentSrc: i.currentSrc,
                            naturalWidth: i.naturalWidth,
                            naturalHeight: i.naturalHeight,
                            width: i.getBoundingClientRect().width,
                            height: i.getBoundingClientRect().height,
                            complete: i.complete})),
  });
})(%s)
"""


class Browser:
    """One headless Chromium with a DevTools pipe."""

    def __init__(self, timeout=60):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="imgfs-chromium-")
        cmd_r, self.cmd_w = os.pipe()
        self.ev_r, ev_w = os.pipe()

        def plumb():
            # The browser reads commands on fd 3 and writes replies on fd 4.
            a, b = os.dup(cmd_r), os.dup(ev_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--user-data-dir=" + self.profile,
             "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=plumb, close_fds=False)
        os.close(cmd_r)
        os.close(ev_w)
        self.pending = b""
        self.next_id = 0
        self.events = []

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.cmd_w)
        os.close(self.ev_r)
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self, deadline):
        while b"\0" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.ev_r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.ev_r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its DevTools pipe")
            self.pending += chunk
        msg, self.pending = self.pending.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None, timeout=None):
        """Send one command and return its result (raises on an error)."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method, session, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method and \
                        ev.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))


def check(page_path, screenshot_path=None, timeout=120, scale=1,
          click_copy=False):
    """Load page_path (a local file) at device scale factor scale and
    return the report as a dict; console messages (CSP violations among
    them) are in report["console"]."""
    url = pathlib.Path(os.path.abspath(page_path)).as_uri()
    b = Browser(timeout=timeout)
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})
        session = b.send("Target.attachToTarget",
                         {"targetId": target["targetId"],
                          "flatten": True})["sessionId"]
        b.send("Page.enable", session=session)
        b.send("Runtime.enable", session=session)
        b.send("Log.enable", session=session)
        b.send("Emulation.setDeviceMetricsOverride",
               {"width": 1280, "height": 900, "deviceScaleFactor": scale,
                "mobile": False}, session=session)
        nav = b.send("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            raise RuntimeError(f"navigate {url}: {nav['errorText']}")
        b.wait_event("Page.loadEventFired", session)
        res = b.send("Runtime.evaluate",
                     {"expression": COLLECT % json.dumps(bool(click_copy)),
                      "awaitPromise": True, "userGesture": True,
                      "returnByValue": True}, session=session)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script: {res['exceptionDetails']}")
        report = json.loads(res["result"]["value"])
        report["console"] = [
            " ".join(str(a.get("value", a.get("description", "")))
                     for a in ev["params"].get("args", []))
            for ev in b.events
            if ev.get("method") == "Runtime.consoleAPICalled"
        ] + [
            ev["params"]["entry"].get("text", "")
            for ev in b.events
            if ev.get("method") == "Log.entryAdded"
        ] + [
            ev["params"]["exceptionDetails"].get("text", "")
            for ev in b.events
            if ev.get("method") == "Runtime.exceptionThrown"
        ]
        if screenshot_path:
            time.sleep(0.3)  # let the last decoded images paint
            shot = b.send("Page.captureScreenshot", {"format": "png"},
                          session=session)
            os.makedirs(os.path.dirname(os.path.abspath(screenshot_path)),
                        exist_ok=True)
            with open(screenshot_path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        return report
    finally:
        b.close()


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    report = check(argv[1], argv[2] if len(argv) == 3 else None)
    print(json.dumps(report, indent=1))
    bad = [i for i in report["images"] if i["naturalWidth"] <= 0]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
