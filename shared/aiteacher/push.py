"""Push notifications over FCM HTTP v1.

A service-account JSON (`FCM_CREDENTIALS_FILE`) signs an RS256 JWT assertion that is exchanged at
its `token_uri` for an OAuth access token (cached until shortly before it expires); each message is
then POSTed to `/v1/projects/<FCM_PROJECT_ID>/messages:send`. 429 and 5xx raise, so the RQ job
retries; a token FCM no longer knows (404 / UNREGISTERED) is forgotten.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_token_lock = threading.Lock()
_token_cache: dict[str, Any] = {}


class PushError(RuntimeError):
    pass


def configured() -> bool:
    from aiteacher.config import get_settings

    settings = get_settings()
    return bool(settings.fcm_project_id and settings.fcm_credentials_file)


def _post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)  # noqa: S310 - configured URL
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        return int(exc.code), body
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise PushError(f"FCM unreachable: {exc}") from exc


def _access_token() -> str:
    import jwt

    from aiteacher.config import get_settings

    with _token_lock:
        if _token_cache.get("expires", 0) - 60 > time.time():
            return str(_token_cache["token"])
        credentials = get_settings().fcm_credentials_file
        if credentials is None:
            raise PushError("FCM_CREDENTIALS_FILE is not set")
        account = json.loads(credentials.read_text())
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": account["client_email"],
                "scope": SCOPE,
                "aud": account["token_uri"],
                "iat": now,
                "exp": now + 3600,
            },
            account["private_key"],
            algorithm="RS256",
        )
        status, body = _post(
            account["token_uri"],
            urllib.parse.urlencode(
                {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
            ).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 200 or "access_token" not in body:
            raise PushError(f"FCM token exchange failed with HTTP {status}")
        _token_cache.update(token=body["access_token"], expires=now + int(body.get("expires_in", 3600)))
        return str(body["access_token"])


def send(device_tokens: dict[str, str], title: str, body: str) -> list[str]:
    """Send to {user_id: device token}; returns the user ids whose tokens FCM rejected as gone."""
    from aiteacher.config import get_settings

    settings = get_settings()
    url = f"{settings.fcm_base_url.rstrip('/')}/v1/projects/{settings.fcm_project_id}/messages:send"
    stale = []
    for user_id, token in device_tokens.items():
        message = {"message": {"token": token, "notification": {"title": title, "body": body}}}
        status, reply = _post(
            url,
            json.dumps(message).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {_access_token()}"},
        )
        if status == 200:
            continue
        error_code = json.dumps(reply.get("error", {}))
        if status == 404 or "UNREGISTERED" in error_code:
            stale.append(user_id)
        elif status == 429 or status >= 500:
            raise PushError(f"FCM answered {status}; will retry")
        # Other 4xx (a malformed token): nothing a retry would fix.
    return stale


def reset() -> None:
    with _token_lock:
        _token_cache.clear()
