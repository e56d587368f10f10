"""The gateway settings that point the console's GitHub and OpenID Connect sign-in at the
emulators (``relaygate.emulator.github_oauth``, ``relaygate.emulator.oidc``): one place for
the integration and browser tests of external sign-in."""

from __future__ import annotations

from relaygate.emulator.github_oauth import GitHubOAuthEmulator
from relaygate.emulator.oidc import OIDCEmulator

__all__ = ["OIDC_NAME", "github_env", "oauth_env", "oidc_env"]

OIDC_NAME = "Emulated SSO"  # the button says "使用 Emulated SSO 登录"


def oidc_env(idp: OIDCEmulator) -> dict[str, str]:
    return {
        "RELAYGATE_CONSOLE_OIDC_ISSUER": idp.issuer,
        "RELAYGATE_CONSOLE_OIDC_CLIENT_ID": idp.knobs.client_id,
        "RELAYGATE_CONSOLE_OIDC_CLIENT_SECRET": idp.knobs.client_secret,
        "RELAYGATE_CONSOLE_OIDC_NAME": OIDC_NAME,
    }


def github_env(gh: GitHubOAuthEmulator) -> dict[str, str]:
    return {
        "RELAYGATE_CONSOLE_GITHUB_CLIENT_ID": gh.knobs.client_id,
        "RELAYGATE_CONSOLE_GITHUB_CLIENT_SECRET": gh.knobs.client_secret,
        "RELAYGATE_CONSOLE_GITHUB_URL": gh.origin,
        "RELAYGATE_CONSOLE_GITHUB_API_URL": gh.api_url,
    }


def oauth_env(idp: OIDCEmulator | None, gh: GitHubOAuthEmulator, **extra: str) -> dict[str, str]:
    """Both providers (OIDC only when ``idp`` is given), with sign-up and sign-in limits high
    enough for a module of tests, then ``extra``."""
    env = github_env(gh) | {
        "RELAYGATE_CONSOLE_SIGNUP_IP_LIMIT": "1000",
        "RELAYGATE_CONSOLE_SIGNIN_IP_LIMIT": "1000",
    }
    if idp is not None:
        env |= oidc_env(idp)
    return env | extra
