"""The local cloud's Amazon SES: moto's, which refuses a sender that is not a verified identity (as SES
does), and which here also delivers each mail it accepts to a mailbox folder, one ``.eml`` file per
recipient (RFC 5322: any mail client opens it; ``read_mailbox`` parses it).

The functions call SES exactly as on AWS (``SendEmail`` through boto3, at the ``AWS_ENDPOINT_URL`` the
local cloud gives them, its moto server); the local IAM enforcement checks ``ses:SendEmail`` against the
function's role. What moto does not hold the functions to: SES's sandbox (mail only to verified addresses)
and its sending quotas — an operator's account matter, not the code's (docs/security.md)."""

from __future__ import annotations

import email
import email.policy
import email.utils
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_mailbox: Path | None = None
_numbers = itertools.count(1)


def deliver_to(folder: Path | None) -> None:
    """Write every mail SES accepts from now on into ``folder`` (None: keep none)."""
    global _mailbox
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    _mailbox = folder
    _hook_moto()


def _hook_moto() -> None:
    from moto.ses.models import SESBackend

    if getattr(SESBackend.send_email, "_agenthq_mailbox", False):
        return
    original: Callable[..., Any] = SESBackend.send_email

    def send_email(self: Any, source: str, subject: str, body: str, destinations: dict[str, list[str]]) -> Any:
        message = original(self, source, subject, body, destinations)  # moto's checks (a verified sender) first
        for recipient in [a for addresses in destinations.values() for a in addresses]:
            _write(source, recipient, subject, body, message.id)
        return message

    send_email._agenthq_mailbox = True  # type: ignore[attr-defined]
    SESBackend.send_email = send_email  # type: ignore[method-assign]


def _write(source: str, recipient: str, subject: str, body: str, message_id: str) -> None:
    folder = _mailbox
    if folder is None:
        return
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = source, recipient, subject
    mail["Date"] = email.utils.format_datetime(datetime.now(UTC))
    mail["Message-ID"] = f"<{message_id}@email.amazonses.com>"
    mail.set_content(body)
    with _lock:
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{next(_numbers):04d}.eml"
        (folder / name).write_bytes(mail.as_bytes(policy=email.policy.SMTP))


def read_mailbox(folder: Path, to: str | None = None) -> list[EmailMessage]:
    """The mails in ``folder`` (to ``to`` only, if given), oldest first."""
    found = []
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)  # nosec B101  # the default policy makes EmailMessage
        if to is None or message["To"] == to:
            found.append(message)
    return found
