// Small Python programs the end-to-end tests run as pods' apps and clients (python3 is on every Debian
// machine). Each test writes the ones it needs into its work directory.

/** HTTP/1.1 keep-alive server on :8080 answering `<GREETING> [<POD_NAME>] [<VERSION>] <path>`; a path
 *  under /slow answers after SLOW_SECONDS (default 2). GREETING defaults to "hello from". */
export const WEB_SERVER = `
import http.server, os, time
class Web(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body leave in two writes: with Nagle on, the body waits for the peer's delayed ACK
    # (40 ms a request on keep-alive, with or without a mesh in between).
    disable_nagle_algorithm = True
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(float(os.environ.get("SLOW_SECONDS", "2")))
        parts = [os.environ.get("GREETING", "hello from"), os.environ.get("POD_NAME", ""), os.environ.get("VERSION", ""), self.path]
        body = (" ".join(p for p in parts if p) + "\\n").encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Web).serve_forever()
`;

/** GETs `path` from host:port in a loop (a new connection each, or one kept alive with --keep-alive)
 *  until the stop file exists; prints {"ok", "fail", "seen": {body: count}, "errors"} as JSON. */
export const LOAD_LOOP = `
import http.client, json, os, sys, time
host, port, path, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
keep = "--keep-alive" in sys.argv
ok = 0; fail = 0; seen = {}; errors = []
c = None
while not os.path.exists(stop):
    try:
        if c is None:
            c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode().strip()
        if not keep:
            c.close(); c = None
        if r.status == 200:
            ok += 1
            seen[body] = seen.get(body, 0) + 1
        else:
            fail += 1
            errors.append(f"status {r.status}: {body[:200]}")
    except Exception as e:
        fail += 1
        errors.append(repr(e))
        c = None
    time.sleep(0.02)
print(json.dumps({"ok": ok, "fail": fail, "seen": seen, "errors": errors[:10]}))
`;

/** A server-speaks-first program: on every connection to argv[1] it writes argv[2] and a newline and
 *  closes, reading nothing. */
export const BANNER_SERVER = `
import socket, sys
port, text = int(sys.argv[1]), sys.argv[2]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port))
srv.listen(64)
while True:
    c, _ = srv.accept()
    try:
        c.sendall((text + "\\n").encode())
    except OSError:
        pass
    c.close()
`;

/** Connects to argv[1]:argv[2], sends nothing, prints what the server says until it closes. */
export const BANNER_CLIENT = `
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
sys.stdout.write(data.decode())
`;

/** N GETs of http://argv[1]:argv[2]argv[4] on one keep-alive connection, with a header `name:value` if
 *  argv[5] is given; prints how many answers each body's first word got (`status-N` for a non-200). */
export const REQUEST_COUNT = `
import http.client, json, sys
host, port, n, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
headers = dict([sys.argv[5].split(":", 1)]) if len(sys.argv) > 5 else {}
c = http.client.HTTPConnection(host, port, timeout=10)
counts = {}
for i in range(n):
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    text = r.read().decode()
    body = text.split(" ")[0] if r.status == 200 else f"status-{r.status}"
    counts[body] = counts.get(body, 0) + 1
print(json.dumps(counts))
`;
