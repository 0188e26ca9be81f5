"""Drives headless Chromium over the DevTools protocol, one command per line.

Usage: browser.py CHROMIUM PROFILE_DIR

Reads JSON commands from stdin, one per line, and answers each with one JSON
line on stdout:
  {"op": "navigate", "url": U}          -> {"ok": true}  (after the load event)
  {"op": "eval", "expr": JS}            -> {"ok": true, "value": V}
  {"op": "screenshot", "path": P}       -> {"ok": true}  (PNG of the viewport)
Errors answer {"ok": false, "error": "..."}. Chromium stops when stdin closes.
"""
import base64
import json
import os
import subprocess
import sys
import time
import urllib.request

import websocket


def main():
    chromium, profile = sys.argv[1], sys.argv[2]
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--window-size=1280,1000", f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(open(port_file).read().split()[0])
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(p for p in pages if p.get("type") == "page")
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        ids = iter(range(1, 1 << 30))

        def call(method, **params):
            i = next(ids)
            ws.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == i:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg.get("result", {})

        def wait_event(name, timeout=30):
            end = time.time() + timeout
            while time.time() < end:
                msg = json.loads(ws.recv())
                if msg.get("method") == name:
                    return msg
            raise RuntimeError(f"no {name} within {timeout} s")

        call("Page.enable")
        for line in sys.stdin:
            cmd = json.loads(line)
            try:
                if cmd["op"] == "navigate":
                    call("Page.navigate", url=cmd["url"])
                    wait_event("Page.loadEventFired")
                    out = {"ok": True}
                elif cmd["op"] == "eval":
                    r = call("Runtime.evaluate", expression=cmd["expr"], returnByValue=True, awaitPromise=True)
                    if "exceptionDetails" in r:
                        raise RuntimeError(str(r["exceptionDetails"]))
                    out = {"ok": True, "value": r["result"].get("value")}
                elif cmd["op"] == "screenshot":
                    r = call("Page.captureScreenshot", format="png")
                    with open(cmd["path"], "wb") as f:
                        f.write(base64.b64decode(r["data"]))
                    out = {"ok": True}
                else:
                    out = {"ok": False, "error": f"unknown op {cmd['op']}"}
            except Exception as e:  # answered, not fatal: the test decides
                out = {"ok": False, "error": str(e)}
            print(json.dumps(out), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
