"""Who may use the local app: the threat model of a web server on the officer's computer.

Threats and where they are met:
- another local user (or a program of theirs) connecting to the port: it needs the
  session cookie, which only the browser that opened the one-time login URL holds
  (the URL is printed to the officer's terminal; its token works once);
- another site the officer visits (CSRF, cross-site fetches): SameSite=Strict cookie,
  a CSRF token on every POST, ``Origin`` must be this app, ``Sec-Fetch-Site`` must not
  be cross-site;
- DNS rebinding (attacker.example resolving to 127.0.0.1, so the browser treats this
  app as the attacker's origin): the ``Host`` header must be this app's loopback address;
- injected script stealing case content: a strict Content-Security-Policy (only this
  app's own script and style files, no inline code, nothing external), HttpOnly cookie;
- case content lingering in the browser's disk cache or history: ``no-store``;
- clickjacking: ``frame-ancestors 'none'``.
Secrets are compared in constant time; tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware

from clients.cli.texts import Texts

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COOKIE = "stafett_ui"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
# Paths that work without a session: the one-time login itself and the static files
# the refusal pages need (public, no case content).
OPEN_PREFIXES = ("/login/", "/static/")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on form
    # posts, and the Origin check above needs the real one. Nothing leaks cross-site.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class Guard:
    """The app's one login token, one session and its CSRF token."""

    port: int = 0
    clock: Callable[[], float] = time.monotonic
    login_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    language: str = "sv"
    _session: bytes | None = field(default=None, repr=False)
    _login_used: bool = False
    last_active: float = 0.0

    def login_path(self) -> str:
        return f"/login/{self.login_token}"

    def origins(self) -> tuple[str, ...]:
        return (f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}")

    def hosts(self) -> tuple[str, ...]:
        return (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    def redeem(self, token: str) -> str | None:
        """The new session id for the one-time login token, or None (wrong or used)."""
        ok = hmac.compare_digest(_digest(token), _digest(self.login_token))
        if not ok or self._login_used:
            return None
        self._login_used = True
        session = secrets.token_urlsafe(32)
        self._session = _digest(session)
        self.touch()
        return session

    def has_session(self, request: web.Request) -> bool:
        cookie = request.cookies.get(COOKIE)
        return (
            cookie is not None
            and self._session is not None
            and hmac.compare_digest(_digest(cookie), self._session)
        )

    def csrf_ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(_digest(value), _digest(self.csrf))

    def touch(self) -> None:
        self.last_active = self.clock()

    def idle_for(self) -> float:
        return self.clock() - self.last_active


# Stable code → the texts of its page: (title, what happened, what to do). The page
# names the code and says what to do in plain words; it never shows what was expected
# (the port, the allowed origins) or the token, so it helps the officer and nobody else.
_PAGES = {
    "no_session": (
        "ui_refusal_session_title",
        "ui_refusal_session_what",
        "ui_refusal_restart",
    ),
    "login_used": ("ui_refusal_login_title", "ui_refusal_login_what", "ui_refusal_restart"),
    "host": ("ui_refusal_address_title", "ui_refusal_address_what", "ui_refusal_address_todo"),
    "origin": (
        "ui_refusal_address_title",
        "ui_refusal_address_what",
        "ui_refusal_address_todo",
    ),
    "cross_site": (
        "ui_refusal_address_title",
        "ui_refusal_address_what",
        "ui_refusal_address_todo",
    ),
    "csrf": ("ui_refusal_form_title", "ui_refusal_form_what", "ui_refusal_form_todo"),
}


def refusal(request: web.Request, status: int, code: str, language: str) -> web.Response:
    """A refusal page in plain Swedish (or English): what happened and what to do, with
    the stable ``code`` so support can tell the cases apart (no further detail leaks).

    Rendered from ``refusal.html``, which stands alone (no CSRF token, no device name:
    the requester has no session); the security headers come from :func:`add_headers`
    like on every response.
    """
    title, what, todo = _PAGES[code]
    t = Texts(language)
    context = {"t": t, "lang": t.language, "title": t(title), "what": t(what), "todo": t(todo)}
    response = aiohttp_jinja2.render_template("refusal.html", request, {**context, "code": code})
    response.set_status(status)
    return response


def set_session_cookie(response: web.StreamResponse, session: str) -> None:
    # HttpOnly: no script can read it; SameSite=Strict: no other site's page makes the
    # browser send it. Not Secure: plain HTTP on loopback never leaves the computer.
    response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/")


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response, streams and refusals included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if not request.path.startswith("/static/"):
        # Pages show case content: never in the browser's disk cache or back/forward.
        response.headers["Cache-Control"] = "no-store"


def middleware(guard: Guard) -> Middleware:
    @web.middleware
    async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await _check(guard, request, handler)

    return guarded


async def _check(guard: Guard, request: web.Request, handler: Handler) -> web.StreamResponse:
    # DNS rebinding: another name resolving to 127.0.0.1 arrives with its own Host.
    if request.headers.get("Host") not in guard.hosts():
        return refusal(request, 421, "host", guard.language)
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return refusal(request, 403, "cross_site", guard.language)
    origin = request.headers.get("Origin")
    unsafe = request.method not in ("GET", "HEAD")
    if (unsafe or origin is not None) and origin not in guard.origins():
        return refusal(request, 403, "origin", guard.language)
    if not request.path.startswith(OPEN_PREFIXES) and not guard.has_session(request):
        return refusal(request, 403, "no_session", guard.language)
    if unsafe and not await _csrf_ok(guard, request):
        return refusal(request, 403, "csrf", guard.language)
    return await handler(request)


async def _csrf_ok(guard: Guard, request: web.Request) -> bool:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return guard.csrf_ok(header)
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()  # cached: the handler reads the same form
        value = form.get(CSRF_FIELD)
        return guard.csrf_ok(value if isinstance(value, str) else None)
    return False
