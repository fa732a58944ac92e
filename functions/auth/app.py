"""Accounts and sessions: /v1/auth/* and /v1/me."""

from fastapi import Request, Response

from agenthq import accounts, verification
from agenthq.accounts import LoginRequest, NotAMember, RefreshRequest, SignupRequest, Tokens
from agenthq.errors import Conflict, ServiceUnavailable, Unauthorized
from agenthq.http import (
    CurrentPrincipal,
    create_app,
    documented,
    lambda_handler,
    public_api_url,
    seconds_left,
    source_ip,
)
from agenthq.live import access
from agenthq.responses import EmailVerificationStatus, Me, Signup, WsTicket
from agenthq.services import get_services
from agenthq.verification import InvalidVerificationLink, VerifyEmailRequest

app = create_app("auth")


@app.post("/auth/signup", status_code=201, response_model=Signup,
          responses=documented(Conflict, ServiceUnavailable))
def signup(body: SignupRequest, request: Request) -> dict:
    return accounts.signup(get_services(), body, source_ip(request), public_api_url(request))


@app.post("/auth/login", responses=documented(Unauthorized, NotAMember, ServiceUnavailable))
def login(body: LoginRequest, request: Request) -> Tokens:
    return accounts.login(get_services(), body, source_ip(request), seconds_left(request))


@app.post("/auth/refresh", responses=documented(Unauthorized))
def refresh(body: RefreshRequest, request: Request) -> Tokens:
    return accounts.refresh(get_services(), body, source_ip(request))


@app.post("/auth/verify-email", response_model=EmailVerificationStatus, responses=documented(InvalidVerificationLink))
def verify_email(body: VerifyEmailRequest, request: Request) -> dict:
    """Use the one-time token of a link mailed at signup (or by resend): the address is verified."""
    return verification.verify(get_services(), body, source_ip(request))


@app.post("/auth/verify-email/resend", response_model=EmailVerificationStatus,
          responses=documented(ServiceUnavailable))
def resend_verification(principal: CurrentPrincipal, request: Request) -> dict:
    """A new link for the signed-in user's address (once a minute, five times a day)."""
    return verification.resend(get_services(), principal.require_user(), public_api_url(request))


@app.post("/auth/logout", status_code=204)
def logout(principal: CurrentPrincipal) -> Response:
    principal.require_user()
    accounts.logout(get_services(), principal.session_id)
    return Response(status_code=204)


@app.get("/auth/jwks")
def jwks(response: Response) -> dict:
    response.headers["Cache-Control"] = "public, max-age=300"
    return get_services().key_store.public_keys(refresh=True)


@app.get("/me", response_model=Me)
def me(principal: CurrentPrincipal) -> dict:
    return accounts.me(principal.require_user(), get_services().settings.require_verified_email)


@app.post("/ws-tickets", status_code=201, response_model=WsTicket)
def ws_ticket(principal: CurrentPrincipal) -> dict:
    """A one-time ticket (60 s) for a browser's WebSocket connect: wss://…/v1?ticket=<ticket>."""
    return access.issue_ticket(get_services(), principal)


handler = lambda_handler(app)
