"""Emails, each written from a template pair (`templates/NAME.txt` and `.html`) and queued in
the outbox by the transaction that makes it necessary; `project.mail.outbox` sends them."""

from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from project.config import Settings
from project.models import OutboxMessage

SUBJECTS = {
    "reset_password": "Reset your password",
    "verify_email": "Confirm your email address",
    "account_exists": "You already have an account",
}
TEMPLATES = Environment(
    loader=PackageLoader("project.mail"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


class Letters:
    """Writes the service's emails; every link in them starts with `FRONTEND_URL`, never
    with the Host a request named (a forged Host must not steer a reset link elsewhere)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def link(self, page: str, token: str | None = None) -> str:
        query = "" if token is None else f"?{urlencode({'token': token})}"
        return f"{self.settings.frontend_url}/{page}{query}"

    def write(self, name: str, to: str, **context: Any) -> OutboxMessage:
        context |= {"service": self.settings.emails_from_name, "email": to}
        text, html = (TEMPLATES.get_template(f"{name}.{kind}") for kind in ("txt", "html"))
        return OutboxMessage(
            recipient=to,
            subject=SUBJECTS[name],
            text_body=text.render(context),
            html_body=html.render(context),
        )
