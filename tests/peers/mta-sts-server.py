"""An HTTPS server for MTA-STS policies (RFC 8461 §3.3) on loopback, for the
tests: Python's own http.server with ssl, the certificate given. A request
for /.well-known/mta-sts.txt on host H is answered from DOCROOT:
  H.txt       200, text/plain, its bytes
  H.redirect  301 to the URL it holds (RFC 8461: senders must not follow)
  otherwise   404.
Usage: python3 mta-sts-server.py IP PORT CERT KEY DOCROOT   (runs until killed)
"""
import http.server
import os
import ssl
import sys

ip, port, cert, key, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]


class Policy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        if self.path != "/.well-known/mta-sts.txt" or "/" in host or host.startswith("."):
            return self.answer(404, b"not here\n")
        base = os.path.join(root, host)
        if os.path.exists(base + ".redirect"):
            with open(base + ".redirect") as f:
                self.send_response(301)
                self.send_header("Location", f.read().strip())
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if os.path.exists(base + ".txt"):
            with open(base + ".txt", "rb") as f:
                return self.answer(200, f.read())
        return self.answer(404, b"no policy\n")

    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer((ip, port), Policy)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
