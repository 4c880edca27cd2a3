"""Identifiers of entries, devices and entities: built and read here only.

None of them contains the server URL, an e-mail address or a user name. An
entry's unique id names the FlexMeasures account (``account_3``); a second
server whose account happens to have the same id gets a numbered one
(``account_3_2``). Asset devices and FlexMeasures sensor entities carry the
entry's unique id (FlexMeasures ids are only unique within one server);
controlled devices, forecast links, sites and their entities carry their subentry id.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Final, Protocol

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er

from .const import DOMAIN

if TYPE_CHECKING:
    from .data import FlexMeasuresConfigEntry


class _Device(Protocol):
    """A device registry entry, as far as identifiers go."""

    @property
    def identifiers(self) -> set[tuple[str, str]]:
        """Return the device's identifiers."""


ACCOUNT_PREFIX: Final = "account_"
ASSET_INFIX: Final = "_asset_"
SENSOR_INFIX: Final = "_sensor_"
CONTROLLED_DEVICE_PREFIX: Final = "controlled_device_"
FORECAST_LINK_PREFIX: Final = "forecast_link_"
SITE_PREFIX: Final = "site_"


def account_unique_id(account_id: int, taken: Collection[str | None] = ()) -> str:
    """Return an entry unique id for an account: the first not in ``taken``."""
    base = f"{ACCOUNT_PREFIX}{account_id}"
    unique_id, number = base, 1
    while unique_id in taken:
        number += 1
        unique_id = f"{base}_{number}"
    return unique_id


def entry_key(entry: ConfigEntry) -> str:
    """Return what the entry's device and entity ids start with."""
    return entry.unique_id or entry.entry_id


def entry_device_identifier(entry: ConfigEntry) -> tuple[str, str]:
    """Return the identifier of the entry's own device (the account)."""
    return (DOMAIN, entry_key(entry))


def entry_entity_unique_id(entry: ConfigEntry, key: str) -> str:
    """Return the unique id of an entity on the entry's own device."""
    return f"{entry_key(entry)}_{key}"


def asset_identifier(entry: ConfigEntry, asset_id: int) -> tuple[str, str]:
    """Return the device identifier of an asset."""
    return (DOMAIN, f"{entry_key(entry)}{ASSET_INFIX}{asset_id}")


def sensor_unique_id(entry: ConfigEntry, sensor_id: int) -> str:
    """Return the unique id of a FlexMeasures sensor's entity."""
    return f"{entry_key(entry)}{SENSOR_INFIX}{sensor_id}"


def _number_after(prefix: str, text: str) -> int | None:
    """Return the number that follows ``prefix`` in ``text``, or None."""
    rest = text.removeprefix(prefix)
    return int(rest) if rest != text and rest.isdecimal() else None


def asset_id_of(entry: ConfigEntry, device: _Device) -> int | None:
    """Return the id of the asset a device stands for, or None for other devices."""
    prefix = f"{entry_key(entry)}{ASSET_INFIX}"
    return next(
        (
            asset_id
            for domain, identifier in device.identifiers
            if domain == DOMAIN
            and (asset_id := _number_after(prefix, identifier)) is not None
        ),
        None,
    )


def sensor_id_of(entry: ConfigEntry, unique_id: str) -> int | None:
    """Return the FlexMeasures sensor of an entity's unique id, or None."""
    return _number_after(f"{entry_key(entry)}{SENSOR_INFIX}", unique_id)


def controlled_device_identifier(subentry_id: str) -> tuple[str, str]:
    """Return the device identifier of a controlled device (a subentry)."""
    return (DOMAIN, f"{CONTROLLED_DEVICE_PREFIX}{subentry_id}")


def controlled_device_unique_id(subentry_id: str, key: str) -> str:
    """Return the unique id of an entity of a controlled device."""
    return f"{subentry_id}_{key}"


def controlled_device_subentry_id(device: _Device) -> str | None:
    """Return the subentry id of a controlled device, or None for other devices."""
    return next(
        (
            identifier.removeprefix(CONTROLLED_DEVICE_PREFIX)
            for domain, identifier in device.identifiers
            if domain == DOMAIN and identifier.startswith(CONTROLLED_DEVICE_PREFIX)
        ),
        None,
    )


def site_identifier(subentry_id: str) -> tuple[str, str]:
    """Return the device identifier of a site (a subentry)."""
    return (DOMAIN, f"{SITE_PREFIX}{subentry_id}")


def site_unique_id(subentry_id: str, key: str) -> str:
    """Return the unique id of an entity of a site."""
    return f"{subentry_id}_{key}"


def site_subentry_id(device: _Device) -> str | None:
    """Return the subentry id of a site's device, or None for other devices."""
    return next(
        (
            identifier.removeprefix(SITE_PREFIX)
            for domain, identifier in device.identifiers
            if domain == DOMAIN and identifier.startswith(SITE_PREFIX)
        ),
        None,
    )


async def async_rekey_registries(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, old_key: str, new_key: str
) -> None:
    """Move the entry's device identifiers and entity unique ids to a new key.

    Registry entries keep their ids (entity ids, device ids), so names, areas,
    customisations and recorder history stay with them.
    """

    def rekey(identifier: str) -> str:
        if identifier == old_key:
            return new_key
        if identifier.startswith(f"{old_key}_"):
            return f"{new_key}_{identifier.removeprefix(f'{old_key}_')}"
        return identifier

    @callback
    def rekey_entity(entity: er.RegistryEntry) -> dict[str, str] | None:
        unique_id = rekey(entity.unique_id)
        return None if unique_id == entity.unique_id else {"new_unique_id": unique_id}

    await er.async_migrate_entries(hass, entry.entry_id, rekey_entity)
    device_registry = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(device_registry, entry.entry_id):
        identifiers = {
            (domain, rekey(identifier) if domain == DOMAIN else identifier)
            for domain, identifier in device.identifiers
        }
        if identifiers != device.identifiers:
            device_registry.async_update_device(device.id, new_identifiers=identifiers)


def forecast_link_identifier(subentry_id: str) -> tuple[str, str]:
    """Return the device identifier of a forecast link (a subentry)."""
    return (DOMAIN, f"{FORECAST_LINK_PREFIX}{subentry_id}")


def forecast_link_unique_id(subentry_id: str, key: str) -> str:
    """Return the unique id of a forecast link's entity."""
    return f"{subentry_id}_{key}"
