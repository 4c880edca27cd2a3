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

__all__ = ["device_by_identifier", "vol"]


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
