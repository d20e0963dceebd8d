"""Workloads are data: deterministic from a seed, round-trip through `datasets`."""
from __future__ import annotations

import json

from experiments.bench import workloads


def test_same_seed_same_rows_other_seed_other_rows():
    spec = workloads.make_spec("shared_prefix_chat", num_requests=8)
    a, b = workloads.generate(spec, seed=0), workloads.generate(spec, seed=0)
    assert a.rows == b.rows and a.fingerprint == b.fingerprint
    assert workloads.generate(spec, seed=1).fingerprint != a.fingerprint


def test_shared_prefix_requests_share_their_prefix():
    spec = workloads.make_spec("shared_prefix_chat", num_requests=8, num_prefixes=2, prefix_words=50)
    rows = workloads.generate(spec).rows
    heads = {r["kind"]: set() for r in rows}
    for r in rows:
        heads[r["kind"]].add(" ".join(r["prompt"].split()[:50]))
    assert len(heads) == 2 and all(len(h) == 1 for h in heads.values())


def test_mixed_workload_has_long_and_short_requests():
    spec = workloads.make_spec("mixed_long_short", num_requests=16, long_fraction=0.25)
    rows = workloads.generate(spec).rows
    kinds = [r["kind"] for r in rows]
    assert kinds.count("long") == 4 and kinds.count("short") == 12
    lens = {r["kind"]: len(r["prompt"].split()) for r in rows}
    assert lens == {"long": spec.long_words, "short": spec.short_words}


def test_prompts_retokenise_to_planned_lengths():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(workloads.DEFAULT_TOKENIZER))
    rows = workloads.generate(workloads.make_spec("mixed_long_short", num_requests=8)).rows
    for r in rows:
        n = len(tok.encode(r["prompt"]).ids)
        assert abs(n - len(r["prompt"].split())) <= 0.05 * n + 2


def test_save_and_load_roundtrip(tmp_path):
    wl = workloads.generate(workloads.make_spec("shared_prefix_chat", num_requests=4))
    meta = workloads.save(wl, tmp_path)
    assert workloads.load_rows(tmp_path / wl.name) == wl.rows
    lines = [json.loads(x) for x in (tmp_path / f"{wl.name}.jsonl").read_text().splitlines()]
    assert [x["prompt"] for x in lines] == [r["prompt"] for r in wl.rows]
    assert meta["fingerprint"] == wl.fingerprint


def test_long_docs_are_real_text_several_times_the_step_budget():
    """long_docs: windows of vLLM's docs (not random vocabulary) that re-tokenise to their planned
    lengths; documents at least 4x the long-docs preset's 512-token step budget."""
    from tokenizers import Tokenizer

    from experiments.bench import presets

    budget = presets.LONG_DOCS_ENGINE_ARGS["max_num_batched_tokens"]
    spec = workloads.make_spec("long_docs", num_requests=24)
    wl = workloads.generate(spec)
    assert wl.rows == workloads.generate(spec).rows
    tok = Tokenizer.from_file(str(workloads.DEFAULT_TOKENIZER))
    lens = {"long": [], "short": []}
    for r in wl.rows:
        lens[r["kind"]].append(len(tok.encode(r["prompt"]).ids))
    assert len(lens["long"]) == 6 and min(lens["long"]) >= 4 * budget * 0.98
    assert max(lens["short"]) <= spec.short_tokens[1] * 1.05
    assert workloads.request_kinds(wl.rows) == [r["kind"] for r in wl.rows]
    # Real text: mostly words that are not in a random-vocabulary prompt's alphabet-only form.
    assert any(ch in wl.rows[0]["prompt"] for ch in ".,`(\n")
    burst = workloads.generate(workloads.make_spec("long_docs_burst", num_requests=24))
    assert {r["prompt"] for r in burst.rows}.isdisjoint(r["prompt"] for r in wl.rows)


def test_agentic_follow_ups_extend_their_session_and_most_prompt_tokens_are_cached_history():
    wl = workloads.generate(workloads.make_spec("agentic"))
    spec = workloads.Agentic()
    rows = wl.rows
    assert len(rows) == spec.num_sessions * spec.turns_per_session + spec.num_cold
    assert workloads.request_kinds(rows).count("long") == spec.num_sessions + spec.num_cold
    # every follow-up is an earlier prompt of its session plus a new turn: that earlier prompt is cached
    seen, cached, total = [], 0, 0
    for r in rows:
        words = r["prompt"].split(" ")
        total += len(words)
        prior = [p for p in seen if r["prompt"].startswith(p + " ")]
        if r["kind"] == "short":
            assert prior, r["request_id"]
            cached += len(max(prior, key=len).split(" "))
            assert len(words) - len(max(prior, key=len).split(" ")) == spec.turn_words
        seen.append(r["prompt"])
    assert rows[0]["kind"] == "long" and cached / total >= 0.9
    assert workloads.generate(workloads.make_spec("agentic")).fingerprint == wl.fingerprint
