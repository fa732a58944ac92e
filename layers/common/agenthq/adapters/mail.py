"""Mail to people (the e-mail verification link), through Amazon SES's ``SendEmail``.

The endpoint is boto3's business, as for every adapter: AWS's on AWS, the
standard ``AWS_ENDPOINT_URL[_SES]`` variables in the local cloud (whose SES
writes each mail to its mailbox folder)."""

from __future__ import annotations

from typing import Any, Protocol


class MailNotSent(RuntimeError):
    """SES did not take the mail (not configured, refused, unreachable)."""


class Mailer(Protocol):
    def send(self, to: str, subject: str, text: str) -> None: ...


class SesMailer:
    def __init__(self, client: Any, sender: str) -> None:
        self.client = client
        self.sender = sender

    def send(self, to: str, subject: str, text: str) -> None:
        if not self.sender:
            raise MailNotSent("no sender address is configured (VERIFICATION_EMAIL_SENDER)")
        try:
            self.client.send_email(
                Source=self.sender,
                Destination={"ToAddresses": [to]},
                Message={"Subject": {"Data": subject, "Charset": "UTF-8"},
                         "Body": {"Text": {"Data": text, "Charset": "UTF-8"}}})
        except Exception as exc:  # botocore's ClientError, an endpoint that cannot be reached, ...
            raise MailNotSent(str(exc)) from exc
