"""Pure analysis of one recorded run: per-step timeline, TTFT, inter-token gaps, head-of-line blocking.

Input is what `engine.drive` records (plain dicts and lists, no vLLM import):

- `steps[i]`: `t_start`, `t_end` (s since the run began), `reqs` = `[[request_id, prefill_tokens,
  decode_tokens], ...]` as scheduled for that step, `total`, `waiting`, `running`, `cpu_s`;
- `tokens[request_id]`: `[[step_index, t, n_new_tokens], ...]`, one entry per step that returned tokens;
- `meta[request_id]`: `kind` ("long" / "short"), `arrival_s`, `prompt_len`, `output_tokens`.

A token's time is the end of the step that produced it: that is when a
streaming client would receive it (one engine loop, no network).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from experiments.common.stats import percentile

SPIKE_FACTOR = 3.0  # an inter-token gap is a spike when > 3x the run's median gap in pure-decode steps


@dataclass(frozen=True)
class Step:
    index: int
    t_start: float
    t_end: float
    long_prefill: int
    short_prefill: int
    decode: int
    long_prefill_reqs: int
    waiting: int
    running: int
    cpu_s: float | None

    @property
    def duration(self) -> float:
        return self.t_end - self.t_start

    @property
    def total(self) -> int:
        return self.long_prefill + self.short_prefill + self.decode

    @property
    def has_long_prefill(self) -> bool:
        return self.long_prefill > 0

    @property
    def pure_decode(self) -> bool:
        return self.long_prefill == 0 and self.short_prefill == 0 and self.decode > 0


def build_steps(steps: list[dict], meta: dict[str, dict]) -> list[Step]:
    out = []
    for i, s in enumerate(steps):
        lp = sp = dec = n_lp = 0
        for rid, prefill, decode in s["reqs"]:
            if meta[rid]["kind"] == "long":
                lp += prefill
                n_lp += prefill > 0
            else:
                sp += prefill
            dec += decode
        out.append(Step(i, s["t_start"], s["t_end"], lp, sp, dec, n_lp, s.get("waiting", 0), s.get("running", 0),
                        s.get("cpu_s")))
    return out


def ttfts(tokens: dict[str, list], meta: dict[str, dict]) -> dict[str, float]:
    """Seconds from the scheduled arrival to the end of the step that produced the first token."""
    return {rid: toks[0][1] - meta[rid]["arrival_s"] for rid, toks in tokens.items() if toks}


def itl_gaps(tokens: dict[str, list], meta: dict[str, dict], steps: list[Step], kind: str = "short") -> list[dict]:
    """Gaps between consecutive tokens of `kind` requests, each tied to the step that ended it.

    The request was already decoding when that step started (it had its first token),
    so a long prefill in that step delays a token a streaming user is waiting for."""
    gaps = []
    for rid, toks in tokens.items():
        if meta[rid]["kind"] != kind:
            continue
        for (_, t_prev, _), (k, t, _) in zip(toks, toks[1:]):
            st = steps[k]
            gaps.append({"rid": rid, "gap_s": t - t_prev, "step": k, "long_prefill_step": st.has_long_prefill,
                         "long_prefill_tokens": st.long_prefill})
    return gaps


def spike_threshold(gaps: list[dict], steps: list[Step], factor: float = SPIKE_FACTOR) -> float:
    """factor x the median gap that ended in a pure-decode step: the ITL a decoding short
    request sees at this load when no prefill shares its step."""
    base = [g["gap_s"] for g in gaps if steps[g["step"]].pure_decode]
    if not base:
        raise ValueError("no inter-token gap ended in a pure-decode step")
    return factor * statistics.median(base)


def spikes(gaps: list[dict], threshold_s: float) -> list[dict]:
    return [g for g in gaps if g["gap_s"] > threshold_s]


def hol_per_request(tokens: dict[str, list], meta: dict[str, dict], steps: list[Step],
                    kind: str = "short") -> list[dict]:
    """For each request of `kind`: what ran between its arrival and its first token.

    `steps_waited`: steps that ended after it arrived, up to and including the one that
    produced its first token. `long_prefill_tokens_ahead`: long-prompt prefill tokens those
    steps computed. `long_prefill_time_s`: the part of its TTFT spent inside steps that
    carried long prefill (clipped to [arrival, first token])."""
    out = []
    for rid, toks in tokens.items():
        m = meta[rid]
        if m["kind"] != kind or not toks:
            continue
        a, first_step, t_first = m["arrival_s"], toks[0][0], toks[0][1]
        window = [s for s in steps[:first_step + 1] if s.t_end > a]
        lp_time = sum(max(0.0, min(s.t_end, t_first) - max(s.t_start, a)) for s in window if s.has_long_prefill)
        out.append({"rid": rid, "arrival_s": a, "first_token_s": t_first, "ttft_s": t_first - a,
                    "steps_waited": len(window), "long_prefill_tokens_ahead": sum(s.long_prefill for s in window),
                    "long_prefill_time_s": lp_time})
    return out


def ms_summary(values_s: list[float]) -> dict:
    if not values_s:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    xs = [v * 1e3 for v in values_s]
    return {"n": len(xs), "p50_ms": percentile(xs, 50), "p90_ms": percentile(xs, 90),
            "p99_ms": percentile(xs, 99), "max_ms": max(xs)}


def summarize_run(run: dict, meta: dict[str, dict], budget: int) -> dict:
    """The per-run numbers the README compares across configs."""
    steps = build_steps(run["steps"], meta)
    tt = ttfts(run["tokens"], meta)
    missing = [rid for rid, m in meta.items() if len(run["tokens"].get(rid, [])) == 0
               or sum(n for _, _, n in run["tokens"][rid]) != m["output_tokens"]]
    gaps = itl_gaps(run["tokens"], meta, steps)
    thr = spike_threshold(gaps, steps)
    sp = spikes(gaps, thr)
    hol = hol_per_request(run["tokens"], meta, steps)
    short_ttft = [tt[r] for r, m in meta.items() if m["kind"] == "short" and r in tt]
    long_ttft = [tt[r] for r, m in meta.items() if m["kind"] == "long" and r in tt]
    lp_steps = [s for s in steps if s.has_long_prefill]
    decode_steps = [s for s in steps if s.pure_decode]
    out_tokens = sum(n for toks in run["tokens"].values() for _, _, n in toks)
    wall = sum(s.duration for s in steps)
    cpu = [s.cpu_s for s in steps if s.cpu_s is not None]
    sum_ttft = sum(h["ttft_s"] for h in hol)
    base = thr / SPIKE_FACTOR
    # time a decoding short request lost to long prefills: what each gap in a long-prefill step
    # exceeded the usual pure-decode gap by, summed per request, averaged over short requests
    lost = sum(max(0.0, g["gap_s"] - base) for g in gaps if g["long_prefill_step"])
    behind = [h["ttft_s"] for h in hol if h["long_prefill_tokens_ahead"] > 0]
    clear = [h["ttft_s"] for h in hol if h["long_prefill_tokens_ahead"] == 0]
    return {
        "wall_s": run["wall_s"], "steps": len(steps), "output_tokens": out_tokens,
        "output_tokens_per_s": out_tokens / run["wall_s"],
        "requests_incomplete": len(missing),
        "short_ttft": ms_summary(short_ttft), "long_ttft": ms_summary(long_ttft),
        "short_itl": ms_summary([g["gap_s"] for g in gaps]),
        "short_itl_in_long_prefill_steps": ms_summary([g["gap_s"] for g in gaps if g["long_prefill_step"]]),
        "short_itl_in_other_steps": ms_summary([g["gap_s"] for g in gaps if not g["long_prefill_step"]]),
        "pure_decode_step_ms_median": 1e3 * statistics.median(s.duration for s in decode_steps),
        "short_itl_pure_decode_median_ms": 1e3 * thr / SPIKE_FACTOR, "spike_threshold_ms": 1e3 * thr, "itl_spikes": len(sp),
        "itl_spikes_in_long_prefill_steps": sum(g["long_prefill_step"] for g in sp),
        "short_gaps": len(gaps),
        "max_step_tokens": max(s.total for s in steps), "budget": budget,
        "steps_over_budget": sum(s.total > budget for s in steps),
        "max_long_prefill_tokens_per_step": max((s.long_prefill for s in steps), default=0),
        "steps_with_long_prefill": len(lp_steps),
        "long_prefill_step_ms": ms_summary([s.duration for s in lp_steps]),
        "max_step_ms": 1e3 * max(s.duration for s in steps),
        "short_steps_waited_p90": percentile([h["steps_waited"] for h in hol], 90) if hol else None,
        "short_ttft_share_in_long_prefill_steps": (sum(h["long_prefill_time_s"] for h in hol) / sum_ttft
                                                    if sum_ttft else None),
        "shorts_behind_long_prefill": len(behind),
        "short_ttft_behind_long_prefill": ms_summary(behind), "short_ttft_clear": ms_summary(clear),
        "short_decode_time_lost_to_long_prefill_ms": 1e3 * lost / max(1, len(hol)),
        "shorts": len(hol),
        # CPU seconds per wall second of the engine process during steps: a drop = it shared the cores
        "cpu_share_of_step_wall": (sum(cpu) / wall) if cpu and wall else None,
        "loadavg_1m_before": run.get("loadavg_1m_before"),
    }


def get_path(d: dict, path: str):
    for k in path.split("."):
        d = d[k]
    return d


def across_repeats(per_run: list[dict], paths: list[str]) -> dict:
    """median / min / max of each metric over the repeats (None values skipped)."""
    out = {}
    for p in paths:
        xs = [v for v in (get_path(r, p) for r in per_run) if v is not None]
        out[p] = ({"median": statistics.median(xs), "min": min(xs), "max": max(xs), "all": xs}
                  if xs else {"median": None, "min": None, "max": None, "all": []})
    return out


STEP_COLUMNS = ["t_start", "t_end", "long_prefill", "short_prefill", "decode", "waiting"]


def steps_to_columns(steps: list[Step], digits: int = 4) -> dict[str, list]:
    """What the timeline plot needs, as column lists (a small JSON), times rounded to 0.1 ms."""
    cols = {c: [getattr(s, c) for s in steps] for c in STEP_COLUMNS}
    for c in ("t_start", "t_end"):
        cols[c] = [round(v, digits) for v in cols[c]]
    return cols


def steps_from_columns(cols: dict[str, list]) -> list[Step]:
    return [Step(i, t0, t1, lp, sp, dec, int(lp > 0), wait, 0, None)
            for i, (t0, t1, lp, sp, dec, wait) in enumerate(zip(*(cols[c] for c in STEP_COLUMNS)))]
