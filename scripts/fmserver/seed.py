"""Create the schema and the seeded structure of the local FlexMeasures server.

Run by scripts/flexmeasures-server with FlexMeasures' own venv python and
HOME pointing at the directory holding the rendered .flexmeasures.cfg:

    python seed.py --out STATE_DIR/seed.json --url http://127.0.0.1:5000

It uses FlexMeasures' Python API (app context, models, services), is idempotent
(get-or-create by name) and writes the ids it created to --out. Prices are NOT
posted here: they depend on the current date and are (re)posted through the
REST API by prices.py at every start/reset.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from importlib.metadata import version
import json
from pathlib import Path
import sys

TIMEZONE = "Europe/Amsterdam"
LOCATION = (52.374, 4.88969)  # Amsterdam

HOME_ACCOUNT = "Home"
HOME_EMAIL = "home@example.com"
HOME_PASSWORD = "home-password"

OTHER_ACCOUNT = "Neighbour"
OTHER_EMAIL = "neighbour@example.com"
OTHER_PASSWORD = "neighbour-password"

BATTERY_CAPACITY_KWH = 10.0
BATTERY_SOC_MIN_KWH = 1.0
BATTERY_POWER_KW = 5.0
EV_CHARGER_POWER_KW = 11.0
SITE_CAPACITY_KVA = 17.0


def main() -> None:
    """Migrate the database, seed accounts, assets and sensors; write seed.json."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, help="where to write seed.json")
    parser.add_argument("--url", required=True, help="base URL of the API")
    args = parser.parse_args()

    # FlexMeasures is imported only here, after the arguments are parsed: it is slow
    # to import and only exists in the server's venv.
    from flask_migrate import upgrade
    from flexmeasures.app import create
    from flexmeasures.data import db
    from flexmeasures.data.models.generic_assets import GenericAsset, GenericAssetType
    from flexmeasures.data.models.time_series import Sensor
    from flexmeasures.data.models.user import Account, User
    from flexmeasures.data.scripts.data_gen import (
        add_default_account_roles,
        add_default_asset_types,
        add_default_data_sources,
        add_default_user_roles,
        provision_default_template_assets,
    )
    from flexmeasures.data.services.users import create_user
    from sqlalchemy import select

    app = create()
    with app.app_context():
        upgrade()  # alembic migrations (same as `flexmeasures db upgrade`)

        add_default_data_sources(db)
        add_default_user_roles(db)
        add_default_account_roles(db)
        add_default_asset_types(db)
        # Normally done at app startup; done once here instead (see the config file).
        provision_default_template_assets(db)
        db.session.commit()

        asset_types = {
            t.name: t for t in db.session.scalars(select(GenericAssetType)).all()
        }

        def user(email: str, password: str, account_name: str) -> User:
            found = db.session.execute(
                select(User).filter_by(email=email)
            ).scalar_one_or_none()
            if found is None:
                found = create_user(
                    email=email,
                    username=email.split("@")[0],
                    password=password,
                    user_roles=["account-admin"],
                    account_name=account_name,
                    check_email_deliverability=False,
                    timezone=TIMEZONE,
                )
                db.session.flush()
            return found

        def asset(
            name: str,
            type_name: str,
            account: Account,
            parent: GenericAsset | None = None,
            **kwargs,
        ) -> GenericAsset:
            query = select(GenericAsset).filter_by(name=name, account_id=account.id)
            found = db.session.execute(query).scalar_one_or_none()
            if found is None:
                found = GenericAsset(
                    name=name,
                    generic_asset_type=asset_types[type_name],
                    owner=account,
                    parent_asset_id=parent.id if parent is not None else None,
                    latitude=LOCATION[0],
                    longitude=LOCATION[1],
                    **kwargs,
                )
                db.session.add(found)
                db.session.flush()
            return found

        def sensor(
            name: str,
            parent: GenericAsset,
            unit: str,
            resolution: timedelta,
            **attributes,
        ) -> Sensor:
            query = select(Sensor).filter_by(name=name, generic_asset_id=parent.id)
            found = db.session.execute(query).scalar_one_or_none()
            if found is None:
                found = Sensor(
                    name=name,
                    generic_asset=parent,
                    unit=unit,
                    event_resolution=resolution,
                    timezone=TIMEZONE,
                    attributes=attributes,
                )
                db.session.add(found)
                db.session.flush()
            return found

        # --- account "Home": the integration's user and a small home site
        home_user = user(HOME_EMAIL, HOME_PASSWORD, HOME_ACCOUNT)
        home = home_user.account
        site = asset("Home", "building", home)
        price = sensor("consumption price", site, "EUR/MWh", timedelta(hours=1))
        site.flex_context = {
            "consumption-price": {"sensor": price.id},
            "site-power-capacity": f"{SITE_CAPACITY_KVA:g} kVA",
        }
        battery = asset("Home battery", "battery", home, parent=site)
        battery_power = sensor(
            "power", battery, "kW", timedelta(minutes=15), consumption_is_positive=True
        )
        battery_soc = sensor("state of charge", battery, "%", timedelta(0))
        battery.flex_model = {
            "soc-min": f"{BATTERY_SOC_MIN_KWH:g} kWh",
            "soc-max": f"{BATTERY_CAPACITY_KWH:g} kWh",
            "power-capacity": f"{BATTERY_POWER_KW:g} kW",
            "roundtrip-efficiency": "90%",
            "state-of-charge": {"sensor": battery_soc.id},
        }
        # An infeasible plan falls back to a relaxed one (scripts/fmserver/pyhooks/
        # fmha_schedulers.py), and the failed job's schedule answers 303.
        battery.attributes = {
            **(battery.attributes or {}),
            "custom-scheduler": {
                "module": "fmha_schedulers",
                "class": "HomeStorageScheduler",
            },
        }
        ev_charger = asset("EV charger", "one-way_evse", home, parent=site)
        ev_power = sensor(
            "power",
            ev_charger,
            "kW",
            timedelta(minutes=15),
            consumption_is_positive=True,
        )
        ev_charger.flex_model = {
            "power-capacity": f"{EV_CHARGER_POWER_KW:g} kW",
            "production-capacity": "0 kW",
        }
        db.session.flush()
        battery.sensors_to_show = [
            {"title": "Price", "plots": [{"sensor": price.id}]},
            {"title": "Power", "plots": [{"sensor": battery_power.id}]},
            {"title": "State of charge", "plots": [{"sensor": battery_soc.id}]},
        ]
        site.sensors_to_show = [
            {"title": "Price", "plots": [{"sensor": price.id}]},
            {"title": "Power", "plots": [{"sensors": [battery_power.id, ev_power.id]}]},
        ]

        # --- account "Neighbour": a second account for "not yours" tests
        other_user = user(OTHER_EMAIL, OTHER_PASSWORD, OTHER_ACCOUNT)
        other = other_user.account
        other_site = asset("Neighbour home", "building", other)
        other_battery = asset("Neighbour battery", "battery", other, parent=other_site)
        other_power = sensor(
            "power",
            other_battery,
            "kW",
            timedelta(minutes=15),
            consumption_is_positive=True,
        )
        other_battery.flex_model = {
            "soc-max": "20 kWh",
            "power-capacity": "10 kW",
        }

        db.session.commit()

        host = args.url.split("://", 1)[-1].rstrip("/")
        seed = {
            "url": args.url.rstrip("/"),
            "host": host,
            "flexmeasures_version": version("flexmeasures"),
            "timezone": TIMEZONE,
            "email": HOME_EMAIL,
            "password": HOME_PASSWORD,
            "account_id": home.id,
            "account_name": home.name,
            "user_id": home_user.id,
            "assets": {
                "site": site.id,
                "battery": battery.id,
                "ev_charger": ev_charger.id,
            },
            "sensors": {
                "price": price.id,
                "battery_power": battery_power.id,
                "battery_soc": battery_soc.id,
                "ev_charger_power": ev_power.id,
            },
            "units": {
                "price": price.unit,
                "battery_power": battery_power.unit,
                "battery_soc": battery_soc.unit,
                "ev_charger_power": ev_power.unit,
            },
            "battery": {
                "capacity_kwh": BATTERY_CAPACITY_KWH,
                "soc_min_kwh": BATTERY_SOC_MIN_KWH,
                "power_kw": BATTERY_POWER_KW,
                "flex_model": battery.flex_model,
            },
            "site_flex_context": site.flex_context,
            "ev_charger_flex_model": ev_charger.flex_model,
            "other": {
                "email": OTHER_EMAIL,
                "password": OTHER_PASSWORD,
                "account_id": other.id,
                "account_name": other.name,
                "assets": {"site": other_site.id, "battery": other_battery.id},
                "sensors": {"battery_power": other_power.id},
            },
        }
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(seed, indent=2) + "\n")
    tmp.replace(out)
    print(f"seeded: account {HOME_ACCOUNT!r} (id {seed['account_id']}), {args.out}")


if __name__ == "__main__":
    sys.exit(main())
