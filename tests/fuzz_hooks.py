"""Schemathesis hooks for tests/test_fuzz.py: the fuzzer is logged in as a normal user.

The fuzzer also calls the operations that end its own session (logout-all, a password
change, deleting the account). When a request then answers 401, Schemathesis asks for a
token again: this logs in, or registers a fresh user when the old one is gone."""

import itertools
import os

import httpx
import schemathesis

BASE_URL = os.environ["FUZZ_BASE_URL"]
PASSWORD = "fuzzing password 1"
_accounts = itertools.count()
_email = f"fuzzer{next(_accounts)}@example.com"


def _login(email: str) -> httpx.Response:
    return httpx.post(
        f"{BASE_URL}/api/v1/auth/login", data={"username": email, "password": PASSWORD}, timeout=30
    )


@schemathesis.auth()
class NormalUser:
    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        global _email
        response = _login(_email)
        if response.status_code != 200:  # the account was deleted by the fuzzer
            _email = f"fuzzer{next(_accounts)}-{os.getpid()}@example.com"
            body = {"email": _email, "password": PASSWORD}
            httpx.post(f"{BASE_URL}/api/v1/auth/register", json=body, timeout=30)
            response = _login(_email)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
