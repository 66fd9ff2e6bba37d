"""Strict keep-alive clients through Caddy while the upstream switches SWITCHES times.

Usage: strict_load.py MODE CADDY_PORT ADMIN_PORT UPSTREAM_PORT SECONDS ADDRESS_FILE. MODE `dns` switches by
rewriting the responder's address file (no Caddy config load); `reload` PATCHes the route's upstreams through the
admin API (a config load, what slip does today). A strict client never retries: every exception or wrong body is
a failure. Prints one JSON line.
"""
import http.client
import json
import os
import sys
import threading
import time
import urllib.request

SWITCHES, CLIENTS = 20, 4
ADDRESSES = {"127.0.1.1": "one", "127.0.1.2": "two"}


def main():
    mode, caddy, admin, upstream, seconds, address_file = sys.argv[1:7]
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"mode": mode, "requests": 0, "failures": 0, "bodies": {}}

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", int(caddy), timeout=5)
        while not stop.is_set():
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                body = response.read().decode()
                right = response.status == 200 and body in ADDRESSES.values()
            except (OSError, http.client.HTTPException):
                right, body = False, None
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", int(caddy), timeout=5)
            with lock:
                stats["requests"] += 1
                if right:
                    stats["bodies"][body] = stats["bodies"].get(body, 0) + 1
                else:
                    stats["failures"] += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    addresses = list(ADDRESSES)
    for i in range(SWITCHES):
        time.sleep(float(seconds) / SWITCHES)
        address = addresses[(i + 1) % 2]
        if mode == "dns":
            with open(address_file + ".tmp", "w") as f:
                f.write(address)
            os.replace(address_file + ".tmp", address_file)
        else:
            url = f"http://127.0.0.1:{admin}/config/apps/http/servers/s/routes/0/handle/0/upstreams"
            body = json.dumps([{"dial": f"{address}:{upstream}"}]).encode()
            request = urllib.request.Request(url, data=body, method="PATCH",
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request).read()
    stop.set()
    for thread in threads:
        thread.join()
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
