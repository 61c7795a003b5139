"""A small web-style app that leaks a little: the target of `make demo`.

It serves HTTP on 127.0.0.1 (an ephemeral port) and drives itself with a client thread,
so the demo needs no other program. Every request is "cached" forever in a module-level
dict (the leak memsnap should point at), and each request also builds temporary JSON
(allocations that are freed again: visible in alloc_space, not in inuse_space).
"""

import http.server
import json
import sys
import threading
import time
import urllib.request

SESSION_CACHE = {}  # grows forever: the leak


def render_page(path):
    rows = [{"id": i, "path": path, "tags": ["a", "b", str(i)]} for i in range(200)]
    return json.dumps({"rows": rows}).encode()


def remember_session(path, body):
    SESSION_CACHE[path] = {"body": body, "seen": time.time()}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = render_page(self.path)
        remember_session(self.path, body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def client(port, stop):
    n = 0
    while not stop.is_set():
        n += 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/item/{n}") as r:
            r.read()
        time.sleep(0.005)


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    stop = threading.Event()
    threading.Thread(target=client, args=(port, stop), daemon=True).start()
    print(f"ready pid={__import__('os').getpid()} port={port}", flush=True)
    limit = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
    threading.Timer(limit, server.shutdown).start()
    server.serve_forever()
    stop.set()


if __name__ == "__main__":
    main()
