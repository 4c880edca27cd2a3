"""What differs between the Home Assistant releases the integration runs on.

The schema library: Home Assistant 2026.10 moved from voluptuous to probatio (and
aliases ``voluptuous`` to it at run time). Importing probatio where it exists gives
type checkers the types Home Assistant's APIs declare; older releases still get
voluptuous.

The device registry: newer releases give a device one config entry and subentry,
and look devices up by identifier within an entry.
"""

from __future__ import annotations

from homeassistant.helpers import device_registry as dr

try:
    import probatio as vol
except ImportError:  # Home Assistant before 2026.10
    import voluptuous as vol  # type: ignore[no-redef]

__all__ = ["device_by_identifier", "device_subentry_ids", "vol"]


def device_by_identifier(
    registry: dr.DeviceRegistry, identifier: tuple[str, str], config_entry_id: str
) -> dr.DeviceEntry | None:
    """Return the entry's device with this identifier, if there is one."""
    if hasattr(registry, "async_get_device_by_identifier"):
        device: dr.DeviceEntry | None = registry.async_get_device_by_identifier(
            identifier, config_entry_id
        )
        return device
    # Before identifiers were unique per entry only.
    return registry.async_get_device({identifier})


def device_subentry_ids(device: dr.DeviceEntry, config_entry_id: str) -> set[str]:
    """Return the subentries of the config entry a device belongs to."""
    if hasattr(device, "config_subentry_id"):
        subentry_id: str | None = device.config_subentry_id
        owned = device.config_entry_id == config_entry_id
        return {subentry_id} if owned and subentry_id is not None else set()
    # Before a device belonged to one config entry and subentry.
    subentries: dict[str, set[str | None]] = device.config_entries_subentries
    return {sub for sub in subentries.get(config_entry_id, ()) if sub is not None}
