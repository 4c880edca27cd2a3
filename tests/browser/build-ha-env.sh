#!/bin/sh
# Build (once) the venv the browser test runs `hass` from: Home Assistant, the
# frontend package it pins, the requirements of the integrations a bare `hass`
# sets up, and the integration's own requirements. Idempotent: a stamp with the
# inputs' hash skips the work when nothing changed.
#
#   build-ha-env.sh VENV HA_VERSION PYTHON
set -eu
venv=$1 ha=$2 python=$3
here=$(cd "$(dirname "$0")" && pwd)
manifest=$here/../../custom_components/flexmeasures/manifest.json
want="ha=$ha python=$python $(cat "$here/ha_requirements.py" "$0" "$manifest" | sha256sum | cut -c1-16)"
if [ -f "$venv/.browser-test-stamp" ] && [ "$(cat "$venv/.browser-test-stamp")" = "$want" ]; then
  exit 0
fi
command -v uv >/dev/null 2>&1 || { echo "build-ha-env: uv is not on PATH" >&2; exit 1; }
echo "build-ha-env: building $venv (Home Assistant $ha)" >&2
rm -rf "$venv"
uv venv -q --python "$python" "$venv"
uv pip install -q --python "$venv/bin/python" "homeassistant==$ha"
constraints=$("$venv/bin/python" -c 'import homeassistant, pathlib; print(pathlib.Path(homeassistant.__file__).parent / "package_constraints.txt")')
"$venv/bin/python" "$here/ha_requirements.py" > "$venv/requirements-browser.txt"
"$venv/bin/python" -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["requirements"]))' "$manifest" >> "$venv/requirements-browser.txt"
uv pip install -q --python "$venv/bin/python" -c "$constraints" -r "$venv/requirements-browser.txt"
echo "$want" > "$venv/.browser-test-stamp"
