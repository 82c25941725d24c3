"""An aiosmtpd handler that takes its time: a Maildir, like aiosmtpd's own
Mailbox, that waits before it accepts each message (seconds as its second
argument). The mail-queue crash test sends through it, so mail is still in
flight when the sender is killed.

    python -m aiosmtpd -n -l 127.0.0.1:PORT -c slow_mailbox.SlowMailbox MAILDIR 0.02
"""

import asyncio

from aiosmtpd.handlers import Mailbox


class SlowMailbox(Mailbox):
    def __init__(self, mail_dir, delay="0.02"):
        super().__init__(mail_dir)
        self.delay = float(delay)

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) not in (1, 2):
            parser.error("a Maildir, and optionally the delay in seconds")
        return cls(*args)
