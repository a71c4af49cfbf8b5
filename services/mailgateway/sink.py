"""A mail sink: an SMTP server that keeps every message it is given as a file.

    python -m services.mailgateway.sink --port 2526 --dir .hostledger/mail

For running hostledger on one machine without a real relay (point SMTP_HOST/SMTP_PORT
at it) and for the tests, which read what the outbox sent. Each message becomes
`<n>.eml` (the bytes as received) beside `<n>.json` (the envelope), written so that a
reader never sees half a file.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import time
from pathlib import Path


class Sink:
    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._numbers = itertools.count(1)
        self._prefix = f"{int(time.time() * 1000)}-{os.getpid()}"

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's hook
        name = f"{self._prefix}-{next(self._numbers):06d}"
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        for suffix, content in ((".eml", data), (".json", json.dumps(meta).encode())):
            tmp = self.directory / f".{name}{suffix}.tmp"
            tmp.write_bytes(content)
            tmp.rename(self.directory / f"{name}{suffix}")
        return "250 2.0.0 Kept"


async def serve(host: str, port: int, directory: Path) -> None:
    from aiosmtpd.smtp import SMTP

    sink = Sink(directory)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink", enable_SMTPUTF8=True, decode_data=False),
        host=host,
        port=port,
        reuse_address=True,
    )
    print(f"mail sink on {host}:{port}, writing to {directory}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.mailgateway.sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2526)
    parser.add_argument("--dir", default=".hostledger/mail")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, Path(args.dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
