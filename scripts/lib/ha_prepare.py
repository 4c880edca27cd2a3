"""Prepare a fresh Home Assistant config directory for the demo, before `hass` runs.

Run by scripts/demo in the `develop` env (it reads the installed Home Assistant's
own constants), once per fresh config directory:

    python scripts/lib/ha_prepare.py --config CONFIG_DIR --port 8123

- HTTP: Home Assistant >= 2026.11 keeps its HTTP settings in a user-managed store
  (`homeassistant/components/http/config.py`): YAML `http:` is migrated into it as
  a *pending* config, which raises a deprecation repair, asks every page to
  confirm it in a modal and is reverted (with a restart) after five minutes
  unconfirmed. So the demo writes that store itself, with loopback and the demo
  port as the *stable* (confirmed) config, no pending config and the YAML
  migration marked done. Older releases without that store get YAML `http:`.
- Onboarding: the core-config step is marked done, so onboarding never starts
  the config flows it suggests (met, radio_browser, google_translate,
  shopping_list), which need packages and internet the demo does not have. The
  user, analytics and integration steps stay for scripts/lib/demo_ha.py.
Prints what it wrote.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
import json
from pathlib import Path
from typing import Any

from homeassistant.components import onboarding
from homeassistant.components.http import const as http_const
from homeassistant.components.onboarding import const as onboarding_const

try:
    from homeassistant.components.http import config as http_config
except ImportError:  # before the user-managed store (HA < 2026.11)
    http_config = None  # type: ignore[assignment]

HOST = "127.0.0.1"


def write_store(
    config_dir: Path, key: str, version: int, minor: int, data: dict[str, Any]
) -> Path:
    """Write one `.storage` file the way Home Assistant's Store does."""
    storage = config_dir / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    path = storage / key
    document = {"version": version, "minor_version": minor, "key": key, "data": data}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def prepare_http(config_dir: Path, port: int) -> str:
    """Make loopback:PORT the confirmed HTTP config; return what was done."""
    if http_config is None or not hasattr(http_config, "KEY_STABLE"):
        with (config_dir / "configuration.yaml").open("a", encoding="utf-8") as yaml:
            yaml.write(f"\nhttp:\n  server_host: {HOST}\n  server_port: {port}\n")
        return f"configuration.yaml: http {HOST}:{port} (no HTTP config store)"
    stable = dict(
        http_config.HTTP_STORAGE_SCHEMA(
            {http_const.CONF_SERVER_HOST: [HOST], http_const.CONF_SERVER_PORT: port}
        )
    )
    stable[http_const.CONF_SSL_PROFILE] = str(stable[http_const.CONF_SSL_PROFILE])
    stable[http_config.HTTP_CONFIG_CREATED_AT] = datetime.now(UTC).isoformat()
    stable[http_config.HTTP_CONFIG_ERROR] = None
    stable[http_config.HTTP_CONFIG_ERROR_MESSAGE] = None
    path = write_store(
        config_dir,
        http_config.STORAGE_KEY,
        http_config.STORAGE_VERSION,
        http_config.STORAGE_MINOR_VERSION,
        {
            http_config.KEY_STABLE: stable,
            http_config.KEY_PENDING: None,
            http_config.KEY_YAML_MIGRATION_DONE: True,
        },
    )
    return f"{path.name} store: stable http {HOST}:{port}, nothing pending"


def prepare_onboarding(config_dir: Path) -> str:
    """Mark onboarding's core-config step done; return what was done."""
    path = write_store(
        config_dir,
        onboarding_const.DOMAIN,
        onboarding.STORAGE_VERSION,
        1,
        {"done": [onboarding_const.STEP_CORE_CONFIG]},
    )
    return f"{path.name} store: step {onboarding_const.STEP_CORE_CONFIG!r} done"


def main() -> None:
    """Write the stores into the config directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args()
    for line in (prepare_http(args.config, args.port), prepare_onboarding(args.config)):
        print(f"[ha-prepare] {line}")


if __name__ == "__main__":
    main()
