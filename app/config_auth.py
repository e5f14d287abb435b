"""Settings of users and sign-in (issue 16), read from MAGNET_* environment variables like app.config.

Kept apart from app.config so the sign-in settings read as one block: `config.auth.<name>`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AuthSettings:
    # Browser sessions: idle expiry, slid forward on every use.
    session_ttl_hours: float = 14 * 24
    cookie_secure: bool = False  # MAGNET_COOKIE_SECURE=1 behind HTTPS
    # Throttle: failed sign-ins per account and per client address within the window -> 429.
    login_window_seconds: int = 15 * 60
    login_max_failures_account: int = 5
    login_max_failures_ip: int = 50
    invitation_ttl_hours: float = 72
    magic_link_ttl_minutes: float = 15
    # Where links in emails point (magic links): never taken from the request's Host header, which a
    # client chooses.
    public_url: str = "http://127.0.0.1:5000"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "magnet@localhost"
    smtp_starttls: bool = False
    smtp_ca_file: str | None = None  # a private CA to trust for STARTTLS (default: the system's)
    smtp_timeout_seconds: float = 10
    max_image_bytes: int = 2 * 1024 * 1024
    max_preferences_bytes: int = 16 * 1024

    @classmethod
    def from_env(cls) -> AuthSettings:
        from app.config import _env, _env_int, _env_seconds

        return cls(
            session_ttl_hours=_env_seconds("MAGNET_SESSION_TTL_HOURS", cls.session_ttl_hours),
            cookie_secure=_env("MAGNET_COOKIE_SECURE", "0") == "1",
            login_window_seconds=_env_int("MAGNET_LOGIN_WINDOW_SECONDS", cls.login_window_seconds),
            login_max_failures_account=_env_int("MAGNET_LOGIN_MAX_FAILURES_ACCOUNT", cls.login_max_failures_account),
            login_max_failures_ip=_env_int("MAGNET_LOGIN_MAX_FAILURES_IP", cls.login_max_failures_ip),
            invitation_ttl_hours=_env_seconds("MAGNET_INVITATION_TTL_HOURS", cls.invitation_ttl_hours),
            magic_link_ttl_minutes=_env_seconds("MAGNET_MAGIC_LINK_TTL_MINUTES", cls.magic_link_ttl_minutes),
            public_url=(_env("MAGNET_PUBLIC_URL", cls.public_url) or cls.public_url).rstrip("/"),
            smtp_host=_env("MAGNET_SMTP_HOST"),
            smtp_port=_env_int("MAGNET_SMTP_PORT", cls.smtp_port),
            smtp_user=_env("MAGNET_SMTP_USER"),
            smtp_password=_env("MAGNET_SMTP_PASSWORD"),
            smtp_from=_env("MAGNET_SMTP_FROM", cls.smtp_from) or cls.smtp_from,
            smtp_starttls=_env("MAGNET_SMTP_STARTTLS", "0") == "1",
            smtp_ca_file=_env("MAGNET_SMTP_CA_FILE"),
            smtp_timeout_seconds=_env_seconds("MAGNET_SMTP_TIMEOUT_SECONDS", cls.smtp_timeout_seconds),
            max_image_bytes=_env_int("MAGNET_MAX_IMAGE_BYTES", cls.max_image_bytes),
            max_preferences_bytes=_env_int("MAGNET_MAX_PREFERENCES_BYTES", cls.max_preferences_bytes),
        )
