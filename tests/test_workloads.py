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
