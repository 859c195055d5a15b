#!/usr/bin/env python3
"""A real SMTP server for the mail tests (aiosmtpd).

Each accepted message is written to OUT/<n>.eml (the DATA bytes as
received, dot-unstuffed) and OUT/<n>.env (MAIL FROM, then one RCPT TO a
line). The answer to DATA is chosen by the file OUT/mode, read at each
message: "ok" (or no file) accepts with 250, "4xx" answers 451, "5xx"
answers 554. Options: --starttls CERT KEY (STARTTLS offered and required),
--tls CERT KEY (TLS from the first byte), --auth USER:PASSWORD (AUTH
required; LOGIN and PLAIN). Prints "READY" once it listens.
"""

import argparse
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        self.n = 0

    def mode(self):
        try:
            with open(os.path.join(self.out, "mode")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return "ok"

    async def handle_DATA(self, server, session, envelope):
        mode = self.mode()
        if mode == "4xx":
            return "451 4.3.0 Temporary failure, try again later"
        if mode == "5xx":
            return "554 5.7.1 Message refused"
        with self.lock:
            self.n += 1
            n = self.n
        base = os.path.join(self.out, str(n))
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".env", "w") as f:
            f.write(envelope.mail_from + "\n")
            for r in envelope.rcpt_tos:
                f.write(r + "\n")
        os.rename(base + ".tmp", base + ".eml")
        return "250 2.0.0 Accepted as message %d" % n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth")
    a = p.parse_args()

    kwargs = {}
    ctx = None
    pair = a.starttls or a.tls
    if pair:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(pair[0], pair[1])
    if a.starttls:
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.tls:
        kwargs.update(server_kwargs={}, ssl_context=ctx)
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, data):
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode() == user
                and data.password.decode() == password
            )
            return AuthResult(success=ok, handled=False)

        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            # With --tls aiosmtpd does not know the socket is TLS already.
            auth_require_tls=bool(a.starttls),
        )
    kwargs.pop("server_kwargs", None)
    c = Controller(Sink(a.out), hostname="127.0.0.1", port=a.port, **kwargs)
    c.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()  # runs until the test closes stdin or kills us
    finally:
        c.stop()


if __name__ == "__main__":
    main()
