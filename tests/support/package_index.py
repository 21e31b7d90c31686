"""A package index on 127.0.0.1 for pip, over HTTPS with a self-signed certificate
(pip caches only what it fetches over HTTPS), answering with the cache headers PyPI
sends: project pages may be kept 10 minutes, files for ever (`immutable`).

Serves one project, `cachedpkg` 1.0, as a wheel made here. Usage:
package_index.py DIRECTORY; prints the port, then logs every request's path to
DIRECTORY/requests.log. Used by tests/python_layouts.rs.
"""

import base64
import hashlib
import http.server
import os
import ssl
import subprocess
import sys
import zipfile

WHEEL = "cachedpkg-1.0-py3-none-any.whl"


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"{name},sha256={digest.decode()},{len(data)}\n"


def make_wheel(path):
    files = {
        "cachedpkg/__init__.py": b'def greeting():\n    return "cachedpkg: from the index"\n',
        "cachedpkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: cachedpkg\nVersion: 1.0\n",
        "cachedpkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: debstage-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(record_line(name, data) for name, data in files.items())
    record += "cachedpkg-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
        wheel.writestr(zipfile.ZipInfo("cachedpkg-1.0.dist-info/RECORD", (2020, 1, 1, 0, 0, 0)), record)


class Handler(http.server.BaseHTTPRequestHandler):
    directory = "."

    def do_GET(self):
        with open(os.path.join(self.directory, "requests.log"), "a") as log:
            log.write(self.path + "\n")
        if self.path.rstrip("/") == "/simple/cachedpkg":
            with open(os.path.join(self.directory, WHEEL), "rb") as wheel:
                digest = hashlib.sha256(wheel.read()).hexdigest()
            body = f'<html><body><a href="/files/{WHEEL}#sha256={digest}">{WHEEL}</a></body></html>'
            self.answer(body.encode(), "text/html", "max-age=600, public")
        elif self.path == f"/files/{WHEEL}":
            with open(os.path.join(self.directory, WHEEL), "rb") as wheel:
                self.answer(wheel.read(), "application/octet-stream", "max-age=365000000, immutable, public")
        else:
            self.send_error(404)

    def answer(self, body, content_type, cache_control):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache_control)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *arguments):
        pass


def main():
    directory = sys.argv[1]
    make_wheel(os.path.join(directory, WHEEL))
    key = os.path.join(directory, "key.pem")
    certificate = os.path.join(directory, "certificate.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-days", "1", "-keyout", key, "-out", certificate],
        check=True, capture_output=True,
    )
    Handler.directory = directory
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
