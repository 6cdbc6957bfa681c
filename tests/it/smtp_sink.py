"""A test SMTP server for nodekeeper's integration tests (tests/it/alert.rs), on aiosmtpd.

Every message received is written to DIR/NNNN.eml (the raw message, as received) and
DIR/NNNN.json (the envelope, the login, whether TLS was on, the decoded headers and body), each
file renamed into place once complete; the .json is written last. With --user/--password
the server offers AUTH (PLAIN, LOGIN) and requires it. --mode tls wraps the socket in TLS from
the first byte (SMTPS, port 465 style); --mode starttls offers and requires STARTTLS.

Prints the port it listens on (one line on stdout), then serves until killed.

    .venv/bin/python tests/it/smtp_sink.py --dir DIR [--port 0] [--mode plain|tls|starttls]
        [--cert PEM --key PEM] [--user U --password P]
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, "%04d" % self.count)
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(content, policy=email.policy.default)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": getattr(session, "nk_login", None),
            # STARTTLS sets session.ssl; implicit TLS is the transport's own.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            # Header values decoded (RFC 2047), the body decoded from its transfer encoding.
            "headers": [[name, str(value)] for name, value in message.items()],
            "body": message.get_content(),
        }
        with open(base + ".eml.tmp", "wb") as f:
            f.write(content)
        os.rename(base + ".eml.tmp", base + ".eml")
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 OK message accepted"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        ):
            session.nk_login = user
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return check


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=["plain", "tls", "starttls"], default="plain")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    context = None
    if args.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    handler = Sink(args.dir)
    auth = args.user is not None

    def factory():
        return SMTP(
            handler,
            hostname="localhost",
            tls_context=context if args.mode == "starttls" else None,
            require_starttls=args.mode == "starttls",
            authenticator=authenticator(args.user, args.password) if auth else None,
            auth_required=auth,
            auth_require_tls=False,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory,
        "127.0.0.1",
        args.port,
        ssl=context if args.mode == "tls" else None,
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
