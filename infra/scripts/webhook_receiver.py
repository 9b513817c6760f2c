#!/usr/bin/env python3
"""A webhook subscriber for tests: verifies every request with the
`standardwebhooks` package (PyPI), records it, and misbehaves on purpose.

Each request is appended to --out as one JSON line: its webhook-id, event
type, body, whether the signature verified, and the answer given. The
signing secret is read from --secret-file at each request (the test writes
it once it has subscribed). The first --fail-first requests are answered
500; request number --hold-at (1-based) is held --hold-secs before its
answer, after writing --hold-file, so a test can kill the sender while it
waits. A request whose signature does not verify is answered 400.

Usage: webhook_receiver.py --port P --out FILE --secret-file FILE
       [--fail-first N] [--hold-at N --hold-secs S --hold-file FILE]
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--hold-at", type=int, default=0)
    parser.add_argument("--hold-secs", type=float, default=0)
    parser.add_argument("--hold-file")
    args = parser.parse_args()

    lock = threading.Lock()
    seen = {"requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:
                seen["requests"] += 1
                number = seen["requests"]
            try:
                with open(args.secret_file) as f:
                    secret = f.read().strip()
                event = Webhook(secret).verify(body, headers)
                verified = True
            except (OSError, WebhookVerificationError) as e:
                event, verified = {"error": str(e)}, False
            if not verified:
                status = 400
            elif number <= args.fail_first:
                status = 500
            else:
                status = 200
            if number == args.hold_at and args.hold_file:
                with open(args.hold_file, "w") as f:
                    f.write(headers.get("webhook-id", ""))
                time.sleep(args.hold_secs)
            line = {
                "number": number,
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "verified": verified,
                "status": status,
                "type": event.get("type") if isinstance(event, dict) else None,
                "event": event,
            }
            with lock, open(args.out, "a") as f:
                f.write(json.dumps(line) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
