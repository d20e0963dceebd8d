"""experiments.patch0002.modes: the metrics it computes, and the committed result it wrote (its table,
its labels, and the figures patch 0002's commit message quotes from it)."""
from __future__ import annotations

import json
import re

import pytest

from experiments.patch0002 import modes
from tools import pins

RESULT = modes.OUT / "modes.json"


def test_percentile_interpolates_like_numpy():
    assert modes.percentile([1, 2, 3, 4], 50) == 2.5
    assert modes.percentile([10], 90) == 10
    assert modes.percentile([0, 10], 90) == 9
    with pytest.raises(ValueError):
        modes.percentile([], 50)


def test_run_metrics_split_by_kind():
    bench = {"ttfts": [0.1, 0.2, 2.0], "itls": [[0.01, 0.03], [0.02], []],
             "latencies": [0.14, 0.22, 2.0], "output_lens": [3, 2, 1], "output_throughput": 42.0}
    m = modes.run_metrics(["short", "short", "long"], bench)
    assert m["short_p50_ttft_ms"] == pytest.approx(150)
    assert m["long_p90_ttft_ms"] == pytest.approx(2000)
    assert m["p50_tpot_ms"] == pytest.approx(20)  # (0.14-0.1)/2 and (0.22-0.2)/1
    assert m["p50_itl_ms"] == pytest.approx(20)
    assert m["output_throughput"] == 42.0
    with pytest.raises(ValueError, match="3 workload rows but 2"):
        modes.run_metrics(["short", "short", "long"], {**bench, "ttfts": [0.1, 0.2]})


def test_aggregate_median_and_spread():
    runs = [{"arm": "a", "rate": "1", "metrics": {m: float(v) for m in modes.METRICS}} for v in (1, 5, 2)]
    cell = modes.aggregate(runs)["1"]["a"]["short_p90_ttft_ms"]
    assert (cell["median"], cell["min"], cell["max"], cell["n"]) == (2.0, 1.0, 5.0, 3)


def test_arms_compare_the_modes_at_one_threshold():
    patched = {k: v for k, v in modes.ARMS.items() if v["engine"] == "patched"}
    assert {v["engine_args"]["short_prefill_first"] for v in patched.values()} == {"work_conserving", "bounded"}
    thresholds = {v["engine_args"].get("long_prefill_token_threshold") for k, v in modes.ARMS.items()
                  if k != "upstream"}
    assert thresholds == {modes.THRESHOLD}
    assert modes.THRESHOLD < modes.ENGINE_ARGS["max_num_batched_tokens"]


@pytest.fixture(scope="module")
def result() -> dict:
    if not RESULT.exists():
        pytest.skip(f"{RESULT} not written yet (python -m experiments.patch0002.modes)")
    return json.loads(RESULT.read_text())


def test_committed_result_is_labelled_and_complete(result):
    assert "simulated" in result["manifest"]["label"] and "not measured" in result["manifest"]["label"]
    assert {r["label"] for r in result["runs"]} == {result["manifest"]["label"]}
    for rate, arms in result["table"].items():
        assert set(arms) == set(modes.ARMS), rate
        for arm, cells in arms.items():
            assert set(cells) == set(modes.METRICS)
            assert cells["short_p90_ttft_ms"]["n"] == len(result["manifest"]["seeds"])
    resolved = {r["arm"]: r["resolved_short_prefill_first"] for r in result["runs"]}
    assert resolved["bounded"] == "bounded" and resolved["work_conserving"] == "work_conserving"
    assert (modes.OUT / "modes.md").read_text() == modes.render(result)


def test_patch_message_figures_come_from_the_result(result):
    """Patch 0002's commit message quotes the 1 req/s row; each figure is the table's median."""
    [patch] = sorted((pins.REPO_ROOT / "patches").glob("0002-*.patch"))
    text = " ".join(patch.read_text().split("\n---\n")[0].split())
    row = result["table"]["1"]

    def ms(arm: str, metric: str) -> str:
        return f"{row[arm][metric]['median']:,.0f}"

    ttft = [ms(a, "short_p90_ttft_ms") for a in ("upstream", "threshold", "work_conserving", "bounded")]
    assert (f"short-request p90 TTFT is {ttft[0]} ms upstream, {ttft[1]} ms with the threshold alone, "
            f"{ttft[2]} ms work-conserving and {ttft[3]} ms bounded") in text
    itl = " / ".join(ms(a, "p99_itl_ms") for a in ("upstream", "threshold", "work_conserving", "bounded"))
    assert f"decode p99 ITL {itl} ms" in text
    tput = [row[a]["output_throughput"]["median"] for a in modes.ARMS]
    assert f"output throughput {min(tput):.1f}-{max(tput):.1f} tokens/s across the four" in text
    tpot = {a: row[a]["p50_tpot_ms"]["median"] for a in modes.ARMS}
    others = [tpot[a] for a in ("threshold", "work_conserving", "bounded")]
    assert (f"decode TPOT p50 {tpot['upstream']:.1f} ms upstream against {min(others):.1f}-{max(others):.1f} ms "
            "for the threshold arms") in text
    # "bounded beats work-conserving on every short-request TTFT and decode TPOT/ITL figure" at 1 req/s
    for metric in ("short_p50_ttft_ms", "short_p90_ttft_ms", "p50_tpot_ms", "p90_tpot_ms", "p50_itl_ms",
                   "p90_itl_ms", "p99_itl_ms"):
        assert row["bounded"][metric]["median"] < row["work_conserving"][metric]["median"], metric
    high = [result["table"][rate][arm]["short_p90_ttft_ms"]["median"] for arm in ("bounded", "work_conserving")
            for rate in ("2", "4")]
    assert ("bounded still has the lowest short-request TTFT (p90 {:,.0f} and {:,.0f} ms, work-conserving "
            "{:,.0f} and {:,.0f} ms)".format(*high)) in text
    for rate in ("2", "4"):
        p90 = {arm: v["short_p90_ttft_ms"]["median"] for arm, v in result["table"][rate].items()}
        assert min(p90, key=p90.get) == "bounded"
    long_s = {a: row[a]["long_p90_ttft_ms"]["median"] / 1000 for a in modes.ARMS}
    threshold_arms = [long_s[a] for a in ("threshold", "work_conserving", "bounded")]
    m = re.search(r"long-request p90 TTFT ([\d.]+) s upstream against ([\d.]+)-([\d.]+) s", text)
    assert m and [float(x) for x in m.groups()] == [round(long_s["upstream"], 1), round(min(threshold_arms), 1),
                                                    round(max(threshold_arms), 1)]
