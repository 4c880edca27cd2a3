"""Benchmark the measurement uploader against a naive one-POST-per-change baseline.

Run: ``python benchmarks/bench_uploader.py [--quick]``. Prints three tables:

1. requests per upload interval as the state-change rate per entity grows;
2. event-loop time per state change with 500 linked entities changing at 1 Hz
   (the uploader's state-change handler, called the way Home Assistant calls it);
3. memory per 10,000 pending values (in RAM and in the Store's JSON).
"""

from __future__ import annotations

from datetime import UTC, datetime
import json
import statistics
import sys
import time
import tracemalloc
from types import MappingProxyType, SimpleNamespace
from typing import Any

from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import State

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench_report import Figure

from custom_components.flexmeasures.aggregation import contiguous_runs
from custom_components.flexmeasures.uploader import (
    MAX_VALUES_PER_POST,
    Link,
    LinkConfig,
    MeasurementUploader,
)

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()
INTERVAL = 300
RESOLUTION = 900
KW = MappingProxyType({"unit_of_measurement": "W"})


def link(index: int = 0) -> Link:
    """Return a battery-power link (W entity, kW sensor, 15-minute slots)."""
    subentry = ConfigSubentry(
        data=MappingProxyType(
            {
                "entity_id": f"sensor.power_{index}",
                "sensor_id": 1000 + index,
                "sensor_unit": "kW",
                "sensor_resolution": RESOLUTION,
                "invert": False,
                "aggregation": "mean",
                "upload_interval": {"seconds": INTERVAL},
            }
        ),
        subentry_type="measurement_link",
        title=f"power {index}",
        unique_id=str(index),
    )
    return Link(LinkConfig.from_subentry(subentry), None, T0)


def requests_per_interval() -> list[tuple[str, float, float, float]]:
    """Simulate two hours per rate; count POSTs per upload interval."""
    rows = []
    for label, period in (
        ("1/min", 60.0),
        ("1/10 s", 10.0),
        ("1/s", 1.0),
        ("10/s", 0.1),
    ):
        item = link()
        hours = 2
        changes = int(hours * 3600 / period)
        posts = values = 0
        next_flush = T0 + INTERVAL
        for step in range(changes):
            now = T0 + step * period
            while now >= next_flush:
                item.take(item.aggregator.advance(next_flush))
                for _, run in contiguous_runs(
                    item.pending, RESOLUTION, MAX_VALUES_PER_POST
                ):
                    posts += 1
                    values += len(run)
                item.pending.clear()
                next_flush += INTERVAL
            state = State("sensor.power_0", str(1000 + step % 50), KW)
            item.take(item.aggregator.update(now, item.value_of(state)))
        intervals = hours * 3600 / INTERVAL
        rows.append(
            (
                label,
                changes / intervals,  # naive: one POST per change
                posts / intervals,
                values / max(posts, 1),
            )
        )
    return rows


class _Store:
    """Stands in for the Store: counts delayed saves."""

    saves = 0

    def async_delay_save(self, data_func: Any, delay: float = 0) -> None:
        """Count a save request."""
        self.saves += 1


def loop_time_per_change(entities: int = 500, seconds: int = 1800) -> dict[str, float]:
    """Time the state-change handler (ours and naive) for entities at 1 Hz."""
    uploader = object.__new__(MeasurementUploader)
    links = [link(index) for index in range(entities)]
    uploader._by_entity = {item.config.entity_id: [item] for item in links}  # noqa: SLF001
    uploader._store = _Store()  # type: ignore[assignment]  # noqa: SLF001
    for item in links:
        item.aggregator.update(T0, None)
    naive_queue: list[str] = []

    def naive(event: Any) -> None:
        """Baseline: turn each change into its own POST body right away."""
        new_state = event.data["new_state"]
        naive_queue.append(
            json.dumps(
                {
                    "start": datetime.fromtimestamp(
                        new_state.last_updated_timestamp, UTC
                    ).isoformat(),
                    "duration": "PT0S",
                    "values": [float(new_state.state) / 1000],
                    "unit": "kW",
                }
            )
        )

    ours_ns: list[int] = []
    naive_ns: list[int] = []
    handler = uploader._async_state_changed  # noqa: SLF001
    for second in range(seconds):
        now = T0 + second
        for index in range(entities):
            state = State(
                f"sensor.power_{index}",
                str(1000 + (second * 7 + index) % 300),
                KW,
                last_updated=datetime.fromtimestamp(now, UTC),
            )
            event = SimpleNamespace(
                data={"entity_id": state.entity_id, "new_state": state},
                time_fired_timestamp=now,
            )
            start = time.perf_counter_ns()
            handler(event)  # type: ignore[arg-type]
            ours_ns.append(time.perf_counter_ns() - start)
            start = time.perf_counter_ns()
            naive(event)
            naive_ns.append(time.perf_counter_ns() - start)
        naive_queue.clear()
    ours_ns.sort()
    naive_ns.sort()
    return {
        "ours_median_us": statistics.median(ours_ns) / 1000,
        "ours_p99_us": ours_ns[int(len(ours_ns) * 0.99)] / 1000,
        "naive_median_us": statistics.median(naive_ns) / 1000,
        "naive_p99_us": naive_ns[int(len(naive_ns) * 0.99)] / 1000,
        "changes": len(ours_ns),
    }


def memory_per_10k() -> dict[str, float]:
    """Measure RAM and Store JSON for 10,000 pending values, ours vs naive."""
    count = 10_000
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    item = link()
    item.take(
        [(int(T0) + index * RESOLUTION, 1.0 + index / 7) for index in range(count)]
    )
    ours = tracemalloc.take_snapshot().compare_to(before, "filename")
    tracemalloc.stop()
    ours_bytes = sum(stat.size_diff for stat in ours)
    ours_json = len(json.dumps(item.as_dict()["pending"]))

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    naive = [
        {
            "start": datetime.fromtimestamp(T0 + index, UTC).isoformat(),
            "duration": "PT0S",
            "values": [1.0 + index / 7],
            "unit": "kW",
        }
        for index in range(count)
    ]
    snap = tracemalloc.take_snapshot().compare_to(before, "filename")
    tracemalloc.stop()
    naive_bytes = sum(stat.size_diff for stat in snap)
    naive_json = len(json.dumps(naive))
    return {
        "ours_ram_kib": ours_bytes / 1024,
        "naive_ram_kib": naive_bytes / 1024,
        "ours_json_kib": ours_json / 1024,
        "naive_json_kib": naive_json / 1024,
    }


def collect(quick: bool = False) -> list[Figure]:
    """Measure the README's uploader figures (ours and naive in the same run)."""
    per_second = next(row for row in requests_per_interval() if row[0] == "1/s")
    loop = loop_time_per_change(seconds=60 if quick else 300)
    mem = memory_per_10k()
    return [
        Figure(
            key="upload_requests",
            name="Upload requests per 5-min interval (entity changing 1/s)",
            ours=per_second[2],
            baseline=per_second[1],
            unit="",
            how="2 h simulated, 15-min slots; baseline: one POST per state change",
        ),
        Figure(
            key="upload_loop_time",
            name="Event-loop time per state change (500 entities at 1 Hz)",
            ours=loop["ours_median_us"],
            baseline=loop["naive_median_us"],
            unit="µs",
            how=(
                f"median over {loop['changes']:,.0f} changes of the uploader's "
                "state-change handler; baseline: build a POST body per change"
            ),
        ),
        Figure(
            key="backlog_ram",
            name="Backlog memory, 10,000 pending values (RAM)",
            ours=mem["ours_ram_kib"],
            baseline=mem["naive_ram_kib"],
            unit="KiB",
            how="tracemalloc; baseline: a queue of POST bodies",
        ),
        Figure(
            key="backlog_store",
            name="Backlog memory, 10,000 pending values (Store JSON)",
            ours=mem["ours_json_kib"],
            baseline=mem["naive_json_kib"],
            unit="KiB",
            how="size of the JSON the Store writes; baseline: the POST bodies",
        ),
    ]


def main(quick: bool = False) -> None:
    """Run all benchmarks and print the tables."""
    print("## Requests per upload interval (5 min, 15-min slots, one entity)\n")
    print("| changes per entity | naive POSTs | ours POSTs | values per POST |")
    print("|---|---:|---:|---:|")
    for label, naive, ours, per_post in requests_per_interval():
        print(f"| {label} | {naive:,.1f} | {ours:.2f} | {per_post:.1f} |")

    minutes = 1 if quick else 30
    print(
        f"\n## Event-loop time per state change (500 entities at 1 Hz, {minutes} min)\n"
    )
    loop = loop_time_per_change(seconds=60 * minutes)
    print("| handler | median | p99 |")
    print("|---|---:|---:|")
    print(
        f"| ours (aggregate, queue slot) | {loop['ours_median_us']:.2f} µs "
        f"| {loop['ours_p99_us']:.2f} µs |"
    )
    print(
        f"| naive (one POST body per change) | {loop['naive_median_us']:.2f} µs "
        f"| {loop['naive_p99_us']:.2f} µs |"
    )
    print(f"\n{loop['changes']:,} state changes timed; goal: median < 50 µs.")

    print("\n## Memory per 10,000 pending values\n")
    mem = memory_per_10k()
    print("| queue | RAM | Store JSON |")
    print("|---|---:|---:|")
    print(
        f"| ours (slot -> value) | {mem['ours_ram_kib']:.0f} KiB "
        f"| {mem['ours_json_kib']:.0f} KiB |"
    )
    print(
        f"| naive (POST bodies) | {mem['naive_ram_kib']:.0f} KiB "
        f"| {mem['naive_json_kib']:.0f} KiB |"
    )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
