"""The demo installation (``relaygate serve --demo``): built-in emulators behind channels
marked as emulators, a demo user with a key, a starting credit and priced demo models, so
a newcomer sees the whole gateway work — balance endpoints included — without an
upstream account. Idempotent: running it again reuses what is there.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from relaygate.emulator import EmulatorServer
from relaygate.services.admin import AdminService
from relaygate.settings import Settings
from relaygate.storage.base import Conflict

__all__ = [
    "DEMO_CREDIT",
    "DEMO_MODELS",
    "DEMO_PRICES",
    "banner",
    "park_emulator_channels",
    "seed",
    "start_emulators",
]

# emulator provider -> the demo models its channel serves
DEMO_MODELS = {
    "openai": ("emulator-gpt", "emulator-embedding"),
    "anthropic": ("emulator-claude",),
}
DEMO_CREDIT = 100_000_000  # units: 100.00 in the operator currency
#: demo model -> (input, output) price in CNY per 1K tokens
DEMO_PRICES = {
    "emulator-gpt": ("0.005", "0.015"),
    "emulator-claude": ("0.02", "0.1"),
    "emulator-embedding": ("0.0005", "0"),
}


def start_emulators() -> dict[str, EmulatorServer]:
    """One emulator per demo provider, in this process, on free loopback ports."""
    servers = {}
    for provider in DEMO_MODELS:
        srv = EmulatorServer(provider, host="127.0.0.1", port=0)
        srv.start()
        servers[provider] = srv
    return servers


async def seed(svc: AdminService, s: Settings, base_urls: dict[str, str]) -> str:
    """Seed (or refresh) the demo data; returns the demo user's API key."""
    demo = await svc.repo.users.get(username="demo")
    if demo is None:
        demo = await svc.create_user({"username": "demo"})
    # a starting credit (once) and prices for the demo models, so the balance
    # endpoints show money going down as the demo is used (docs/billing.md)
    with contextlib.suppress(Conflict):
        await svc.repo.ledger.post(
            demo.id, DEMO_CREDIT, kind="grant", reason="demo starting credit", ref="demo:credit"
        )
    for model, (inp, out) in DEMO_PRICES.items():
        if await svc.repo.prices.get(model) is None:
            await svc.repo.prices.upsert(
                {
                    "model": model,
                    "provider": "relaygate-emulator",
                    "currency": "CNY",
                    "per": "1k",
                    "input": inp,
                    "output": out,
                    "context_window": 128000,
                    "description": "Built-in emulator (canned answers), priced for the demo.",
                    "source": "relaygate demo",
                }
            )
    key_file = Path(s.data_dir) / "demo-key.txt"
    plain = key_file.read_text().strip() if key_file.exists() else ""
    usable = {k.key_hash for k in await svc.list_keys(demo.id) if k.status == "active"}
    if not plain or svc.repo.secrets.hash_key(plain) not in usable:
        _, plain = await svc.create_key({"user_id": demo.id, "name": "demo"})
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(plain)
        os.chmod(key_file, 0o600)
    existing = {c.name: c for c in await svc.list_channels()}
    for provider, models in DEMO_MODELS.items():
        name = f"EMULATOR {provider} (not a real model)"
        fields: dict[str, Any] = {
            "base_url": base_urls[provider],
            "status": "enabled",
            "models": list(models),
        }
        if name in existing:
            await svc.update_channel(existing[name].id, fields)
        else:
            adaptor = "anthropic" if provider == "anthropic" else "openai_compat"
            await svc.create_channel(
                {"name": name, "provider": adaptor, "keys": ["emulator-key"], **fields},
                is_emulator=True,
            )
    return plain


async def park_emulator_channels(svc: AdminService, s: Settings) -> None:
    """A plain ``serve`` (no ``--demo``) runs no emulators: disable their channels."""
    for ch in await svc.list_channels():
        if ch.is_emulator and ch.status == "enabled":
            await svc.update_channel(ch.id, {"status": "disabled"})


def banner(host: str, port: int, plain: str) -> str:
    """What ``serve --demo`` prints: the key, the base URL and a curl to try."""
    url = f"http://{host}:{port}/v1"
    names = ", ".join(m for models in DEMO_MODELS.values() for m in models)
    return f"""
relaygate demo is seeded. Models {names} are served by the
BUILT-IN EMULATOR (canned answers, not a real model).

  API key : {plain}
  base_url: {url}

  curl {url}/chat/completions -H "Authorization: Bearer {plain}" \\
       -H "Content-Type: application/json" \\
       -d '{{"model":"emulator-gpt","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}'
"""
