"""An HTTP server that answers with its stage and a PNG badge drawn by Pillow."""

import argparse
import io
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image, ImageDraw

from pyapp import __version__


def badge(text: str) -> bytes:
    """A PNG badge with the given text."""
    image = Image.new("RGB", (8 * len(text) + 12, 20), (40, 90, 160))
    ImageDraw.Draw(image).text((6, 4), text, fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class Handler(BaseHTTPRequestHandler):
    """Answers /, /badge.png and /health."""

    def do_GET(self) -> None:
        stage = os.environ.get("APP_STAGE", "unknown")
        if self.path == "/badge.png":
            body, kind = badge(f"{stage} {__version__}"), "image/png"
        elif self.path == "/health":
            body, kind = b"ok\n", "text/plain"
        else:
            body, kind = f"pyapp {__version__} on {stage}\n".encode(), "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(format % args + "\n")


def main() -> None:
    """Serves on 127.0.0.1 (the port from --port or PORT)."""
    parser = argparse.ArgumentParser(prog="pyapp")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--check", action="store_true", help="draw a badge and exit")
    arguments = parser.parse_args()
    if arguments.check:
        sys.stdout.write(f"pyapp {__version__}: badge of {len(badge('check'))} bytes\n")
        return
    ThreadingHTTPServer(("127.0.0.1", arguments.port), Handler).serve_forever()


def health() -> None:
    """Exits 0 when the server answers on /health."""
    port = os.environ.get("PORT", "8080")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            sys.exit(0 if answer.status == 200 else 1)
    except OSError:
        sys.exit(1)
