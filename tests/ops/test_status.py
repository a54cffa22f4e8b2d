"""Counter slots, aggregation over workers, and the JSON and OpenMetrics renderings."""

from __future__ import annotations

import json
import os
import re

from smisk.runtime.ops.status import (
    FIELDS,
    HANDLER_US,
    IN_FLIGHT,
    MAX_IN_FLIGHT,
    REQUESTS,
    CounterBlock,
    choose_format,
    render_json,
    render_openmetrics,
    snapshot,
)

SAMPLE = re.compile(r'^[a-z_][a-z0-9_]*(\{pid="\d+"\})? -?\d+(\.\d+)?(e-?\d+)?$')


def two_workers() -> CounterBlock:
    block = CounterBlock(4, shared=True)
    for pid, requests in ((101, 5), (102, 7)):
        index = block.claim()
        assert index is not None
        block.assign(index, pid)
        slot = block.slot(index)
        slot[REQUESTS], slot[IN_FLIGHT], slot[MAX_IN_FLIGHT] = requests, 1, requests
        slot[HANDLER_US] = 1_500_000
    return block


def test_counters_sum_gauges_of_running_workers_and_high_water_is_the_largest() -> None:
    total = snapshot(two_workers())["aggregate"]
    assert (total["requests"], total["requests_in_flight"], total["max_requests_in_flight"]) == (
        12,
        2,
        7,
    )
    assert total["handler_seconds"] == 3.0 and total["workers"] == 2


def test_an_exited_worker_keeps_its_counts_in_the_total_and_frees_its_slot() -> None:
    block = two_workers()
    block.release(1)
    snap = snapshot(block)
    assert snap["aggregate"]["requests"] == 12 and snap["aggregate"]["requests_in_flight"] == 1
    assert [w["pid"] for w in snap["workers"]] == [102]
    assert block.claim() == 1


def test_a_full_block_gives_no_slot() -> None:
    block = CounterBlock(1)
    assert block.claim() == 1 and block.claim() is None


def test_shared_memory_is_seen_by_a_forked_child() -> None:
    block = CounterBlock(2, shared=True)
    pid = os.fork()
    if pid == 0:
        block.slot(2)[REQUESTS] = 42
        os._exit(0)
    os.waitpid(pid, 0)
    assert block.slot(2)[REQUESTS] == 42


def test_json_document() -> None:
    document = json.loads(render_json(snapshot(two_workers()), pid=101))
    assert document["pid"] == 101 and document["requests"] == 12
    assert len(document["per_worker"]) == 2 and document["uptime"] >= 0
    assert {f.name for f in FIELDS} <= set(document["per_worker"][0])


def test_openmetrics_text_is_well_formed() -> None:
    text = render_openmetrics(snapshot(two_workers())).decode()
    lines = text.splitlines()
    assert lines[-1] == "# EOF"
    families: list[str] = []
    for line in lines[:-1]:
        if line.startswith("# TYPE "):
            families.append(line.split()[2])
        elif not line.startswith("#"):
            assert SAMPLE.match(line), line
            name = line.split("{")[0].split()[0]
            assert name.removesuffix("_total") == families[-1], line  # samples follow their type
    assert len(families) == len(set(families))
    assert "smisk_requests_total 12" in lines
    assert 'smisk_worker_requests_total{pid="102"} 7' in lines
    assert (
        "# UNIT smisk_handler_seconds seconds" in lines
        and "smisk_handler_seconds_total 3.0" in lines
    )


def test_format_choice() -> None:
    assert choose_format("", "") == "json"
    assert choose_format("format=openmetrics", "") == "openmetrics"
    assert choose_format("openmetrics", "") == "openmetrics"
    assert choose_format("format=json", "application/openmetrics-text") == "json"
    assert choose_format("", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5") == (
        "openmetrics"
    )
