"""Start-up tweak for the local FlexMeasures server's processes only.

scripts/flexmeasures-server puts this directory on PYTHONPATH for the processes it
runs in FlexMeasures' venv, so Python imports this module at start-up.

inflect (FlexMeasures uses it to pluralise UI labels) decorates its functions with
typeguard's @typechecked, which re-parses and re-compiles their source at import
time: 3-4 s of CPU per process on an idle 2-core machine, 10 s under load, for each
of the web server, the worker and every CLI call. Here @typechecked becomes a
no-op, which only drops inflect's runtime argument type checks (typeguard itself
does the same under `python -O`). Nothing else in the venv uses typeguard.
"""

try:
    import typeguard
except ImportError:  # pragma: no cover
    pass
else:

    def _typechecked(target=None, **_kwargs):
        if target is None:
            return lambda t: t
        return target

    typeguard.typechecked = _typechecked
