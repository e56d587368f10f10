"""The demo installation (``relaygate serve --demo``): built-in emulators behind channels
marked as emulators, a demo user with a key, a starting credit and priced demo models — one
or more for each kind of request (chat, embeddings, completions, moderations, images,
audio, rerank, videos, fine-tuning, assistants; ``demo_models.py``) — so a newcomer sees
the whole gateway work, balance endpoints included, without an upstream account.
Idempotent: running it again reuses the user and key, updates the channels' models,
mapping and surfaces, and prices demo models that have no price yet.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from relaygate.demo_models import DEMO_KINDS, DEMO_MODELS, DemoModel, demo_price_row
from relaygate.emulator import EmulatorServer
from relaygate.providers.surfaces import SURFACES
from relaygate.services.admin import AdminService
from relaygate.settings import Settings
from relaygate.storage.base import Conflict

__all__ = [
    "DEMO_CORPUS",
    "DEMO_CREDIT",
    "DEMO_MODELS",
    "SEARCH_FEE",
    "banner",
    "demo_channels",
    "load_demo_index",
    "park_emulator_channels",
    "seed",
    "start_emulators",
]

DEMO_CREDIT = 100_000_000  # units: 100.00 in the operator currency
#: emulator providers, in the order their channels are made
PROVIDERS = ("openai", "anthropic")


#: the demo's web-search fee (per search, ``billing/stage.py`` SURCHARGES)
SEARCH_FEE: dict[str, Any] = {
    "model": "web-search",
    "provider": "relaygate",
    "currency": "CNY",
    "per": "1k",
    "input": "0",
    "output": "0",
    "per_request": "0.01",
    "description": "A web search of an online request (the demo's local index).",
    "source": "relaygate demo",
}
#: documents about relaygate itself, the demo's local search index (online requests)
DEMO_CORPUS = Path(__file__).parent / "online" / "demo_corpus"


def search_index_path(s: Settings) -> Path:
    """Where the demo's local search index lives (the local backend's default file)."""
    return Path(s.data_dir) / "search.db"


async def load_demo_index(s: Settings) -> int:
    """(Re)load the demo corpus into the local index; returns how many documents it holds.
    ``serve --demo`` makes it the search backend unless the operator chose another."""
    from relaygate.online.local_index import LocalIndex

    index = LocalIndex(search_index_path(s))
    try:
        await index.clear()
        await index.load_path(DEMO_CORPUS)
        return await index.count()
    finally:
        await index.close()


def demo_channels() -> dict[str, list[DemoModel]]:
    """Emulator provider -> the demo models its channel serves."""
    out: dict[str, list[DemoModel]] = {p: [] for p in PROVIDERS}
    for model in DEMO_MODELS:
        out[model.provider].append(model)
    return out


def start_emulators() -> dict[str, EmulatorServer]:
    """One emulator per demo provider, in this process, on free loopback ports."""
    servers = {}
    for provider in PROVIDERS:
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
    for model in DEMO_MODELS:
        if await svc.repo.prices.get(model.name) is None:  # an operator's edit stays
            await svc.repo.prices.upsert(demo_price_row(model))
    if await svc.repo.prices.get(SEARCH_FEE["model"]) is None:
        await svc.repo.prices.upsert(SEARCH_FEE)
    key_file = Path(s.data_dir) / "demo-key.txt"
    plain = key_file.read_text().strip() if key_file.exists() else ""
    usable = {k.key_hash for k in await svc.list_keys(demo.id) if k.status == "active"}
    if not plain or svc.repo.secrets.hash_key(plain) not in usable:
        _, plain = await svc.create_key({"user_id": demo.id, "name": "demo"})
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(plain)
        os.chmod(key_file, 0o600)
    existing = {c.name: c for c in await svc.list_channels()}
    for provider, models in demo_channels().items():
        name = f"EMULATOR {provider} (not a real model)"
        old = existing.get(name)
        fields: dict[str, Any] = {
            "base_url": base_urls[provider],
            "status": "enabled",
            "models": [m.name for m in models],
            "model_mapping": {m.name: m.upstream for m in models if m.upstream},
        }
        if provider == "openai":  # every surface, rerank too (not in OpenAI's profile)
            fields["config"] = {**(old.config if old else {}), "surfaces": list(SURFACES)}
        if old is not None:
            await svc.update_channel(old.id, fields)
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
    """What ``serve --demo`` prints: the key, the base URL, the demo model of each kind of
    request with its endpoint, and two curls to try."""
    url = f"http://{host}:{port}/v1"
    width = max(len(kind) for kind, _, _ in DEMO_KINDS)
    mwidth = max(len(models) for _, models, _ in DEMO_KINDS)
    kinds = "\n".join(
        f"    {kind:<{width}}  {models:<{mwidth}}  {endpoint}"
        for kind, models, endpoint in DEMO_KINDS
    )
    auth = f'-H "Authorization: Bearer {plain}"'
    return f"""
relaygate demo is seeded. Every demo model is served by a
BUILT-IN EMULATOR (canned answers, not a real model).

  API key : {plain}
  base_url: {url}

  A model for each kind of request (the priced ones lower the demo balance):
{kinds}

  curl {url}/chat/completions {auth} \\
       -H "Content-Type: application/json" \\
       -d '{{"model":"emulator-gpt","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}'

  An online answer (web search in the demo's local index, cited as [1]):
  curl {url}/chat/completions {auth} \\
       -H "Content-Type: application/json" \\
       -d '{{"model":"emulator-gpt","online":true,"messages":[{{"role":"user",\
"content":"Where does relaygate keep its data?"}}]}}'

  curl {url}/images/generations {auth} \\
       -H "Content-Type: application/json" \\
       -d '{{"model":"emulator-image","prompt":"a lighthouse","size":"1792x1024"}}'
"""
