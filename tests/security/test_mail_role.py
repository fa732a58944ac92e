"""Only the auth function may send mail, and only from the template's sender address (ses:SendEmail with
an ses:FromAddress condition): proven by the local cloud's IAM enforcement from inside real invocations."""

from __future__ import annotations

import boto3

from local.template import ACCOUNT_ID
from tests.security.test_iam_enforcement import DENIED, attempt


def _send(source: str) -> str:
    client = boto3.client("ses")
    return attempt(lambda: client.send_email(
        Source=source, Destination={"ToAddresses": ["someone@example.com"]},
        Message={"Subject": {"Data": "hello"}, "Body": {"Text": {"Data": "hello"}}}))


def test_the_auth_function_mails_from_the_sender_address_only_and_no_other_function_mails(cloud, handler_of):
    sender = cloud.config.stack.parameters["VerificationEmailSender"]
    cloud.client("ses").verify_email_identity(EmailAddress="ceo@agenthq.localhost")  # a verified identity too

    def auth_handler(event, context):
        return {"sender": _send(sender), "named sender": _send(f"AgentHQ <{sender}>"),
                "another address": _send("ceo@agenthq.localhost")}

    def agents_handler(event, context):
        return {"sender": _send(sender)}

    handler_of("AuthFunction", auth_handler)
    handler_of("AgentsFunction", agents_handler)
    auth = cloud.runtime.invoke("AuthFunction", {})
    assert auth["sender"] == "ok" and auth["named sender"] == "ok", auth
    refused = f"{DENIED}: User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/agenthq-"
    assert auth["another address"].startswith(refused + "AuthFunctionRole/"), auth
    assert "perform: ses:SendEmail " in auth["another address"]
    agents = cloud.runtime.invoke("AgentsFunction", {})
    assert agents["sender"].startswith(refused + "AgentsFunctionRole/") and "ses:SendEmail" in agents["sender"]
