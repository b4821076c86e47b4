#!/usr/bin/env python3
"""A webhook receiver for sgd-hub subscriptions, written with Python's standard library only.

It verifies each delivery's Standard Webhooks signature with its own HMAC-SHA256 (not the hub's
code), refuses stale timestamps, and appends one JSON line per accepted delivery to --out:
{"webhook_id", "id", "source", "type", "subject"}. Deliveries with a bad signature are answered
401 and written with "verified": false. While --mode-file holds "500", every delivery is
answered 500 and not recorded (a receiver that fails).

    python3 scripts/webhook_receiver.py --port 8443 --cert cert.pem --key key.pem \
        --secret whsec_... --out received.jsonl

The test suite runs it as the receiver of the webhook end-to-end tests; docs/integrators.md
shows the verification below as what a local system does.
"""

import argparse
import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60


def verify(secret, headers, body):
    """True when one of the webhook-signature's v1 signatures is ours and the timestamp is fresh."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", help="certificate chain (PEM); without it plain http")
    parser.add_argument("--key", help="private key (PEM)")
    parser.add_argument("--secret", required=True, help="the subscription's secret, whsec_...")
    parser.add_argument("--out", required=True, help="JSON lines, one per accepted delivery")
    parser.add_argument("--mode-file", help='a file whose content "500" makes every answer 500')
    args = parser.parse_args()
    lock = threading.Lock()
    out = open(args.out, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def answer(self, status):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if args.mode_file:
                try:
                    with open(args.mode_file, encoding="utf-8") as f:
                        if f.read().strip() == "500":
                            return self.answer(500)
                except FileNotFoundError:
                    pass
            verified = verify(args.secret, self.headers, body)
            try:
                event = json.loads(body)
            except ValueError:
                event = {}
            record = {
                "webhook_id": self.headers.get("webhook-id"),
                "id": event.get("id"),
                "source": event.get("source"),
                "type": event.get("type"),
                "subject": event.get("subject"),
                "content_type": self.headers.get("Content-Type"),
            }
            if not verified:
                record["verified"] = False
            with lock:
                out.write(json.dumps(record) + "\n")
                out.flush()
            self.answer(204 if verified else 401)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
