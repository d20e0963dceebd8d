"""Per-step timings from inside a real `vllm serve` EngineCore process (armed by `served_hook/sitecustomize.py`).

`vllm serve` runs EngineCore in its own (spawned) process next to the API server; the
in-process recorder (`experiments.sim.recorder`) cannot see that engine. This module wraps
`EngineCore.step` and `EngineCore.add_request` when `vllm.v1.engine.core` is imported (an
import hook, so nothing else imports vLLM early), and appends one JSON line per event to
`served-steps-<pid>.jsonl` beside the process's stdout file (the bench's `server.log`, so
the lines land in the run's directory):
    {"ev": "start", "pid", "wall_minus_mono"}                 time.time() - time.monotonic() at start
    {"ev": "add", "t", "rid", "plen", "arrival"}              request reaches the scheduler; arrival:
                                                              the API server's time.time() stamp
    {"ev": "step", "t0", "s", <step_features>, "first", "fin", "more"}
                                                              a step with tokens scheduled: start,
                                                              seconds, what it computed, request ids
                                                              that got their first token / finished,
                                                              whether work was left (the next step
                                                              follows at once)
Times `t`, `t0` are time.monotonic(), the clock `vllm bench serve`'s time.perf_counter() reads
on Linux (CLOCK_MONOTONIC), so engine events line up with the client's send and receive times.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
import time

from experiments.sim.cost_models import scheduled_features

TARGET = "vllm.v1.engine.core"
_OUT: dict = {}


def _out_path() -> str:
    """Beside the process's stdout when that is a file (the run's server.log), else SIM_SERVED_STEPS_DIR."""
    try:
        stdout = os.readlink("/proc/self/fd/1")
    except OSError:
        stdout = ""
    folder = os.path.dirname(stdout) if os.path.isfile(stdout) else os.environ.get("SIM_SERVED_STEPS_DIR", ".")
    return os.path.join(folder, f"served-steps-{os.getpid()}.jsonl")


def emit(event: dict) -> None:
    if "fh" not in _OUT:
        _OUT["fh"] = open(_out_path(), "a", buffering=1)  # line-buffered: a killed server loses at most a line
        _OUT["fh"].write(json.dumps({"ev": "start", "pid": os.getpid(),
                                     "wall_minus_mono": time.time() - time.monotonic()}) + "\n")
    _OUT["fh"].write(json.dumps(event, separators=(",", ":")) + "\n")


def decision(scheduler, out) -> dict:
    """Cost-model features of a SchedulerOutput, right after schedule() (computed tokens include it)."""
    return scheduled_features(scheduler, dict(out.num_scheduled_tokens))


def install(core_module) -> None:
    engine_core = core_module.EngineCore
    step, add_request = engine_core.step, engine_core.add_request
    seen: set[str] = set()

    def timed_step(self):
        sched = self.scheduler
        if not getattr(sched, "_sim_served_wrapped", False):  # wrap the instance: any Scheduler subclass
            schedule = sched.schedule

            def noting_schedule(*args, **kwargs):
                out = schedule(*args, **kwargs)
                _OUT["decision"] = decision(sched, out) if out.total_num_scheduled_tokens else None
                return out

            sched.schedule, sched._sim_served_wrapped = noting_schedule, True
        _OUT["decision"] = None
        t0 = time.monotonic()
        result = step(self)
        t1 = time.monotonic()
        feats = _OUT["decision"]
        if feats is not None:
            first, fin = [], []
            for eco in (result[0] or {}).values():
                for o in eco.outputs:
                    if o.new_token_ids and o.request_id not in seen:
                        seen.add(o.request_id)
                        first.append(o.request_id)
                    if o.finish_reason is not None:
                        fin.append(o.request_id)
                        seen.discard(o.request_id)
            emit({"ev": "step", "t0": t0, "s": t1 - t0, **feats, "first": first, "fin": fin,
                  "more": sched.has_unfinished_requests()})
        return result

    def timed_add_request(self, request, *args, **kwargs):
        emit({"ev": "add", "t": time.monotonic(), "rid": request.request_id, "plen": request.num_prompt_tokens,
              "arrival": request.arrival_time})
        return add_request(self, request, *args, **kwargs)

    engine_core.step, engine_core.add_request = timed_step, timed_add_request


class AfterImport(importlib.abc.MetaPathFinder):
    """Calls `callback(module)` right after module `name` executes, before anything else uses it
    (so a class can be wrapped before its first instance exists), without importing it early."""

    def __init__(self, name: str, callback):
        self.name, self.callback = name, callback

    def find_spec(self, name, path, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)  # once, and the real finders below answer the lookup
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_call(module):
            exec_module(module)
            self.callback(module)

        spec.loader.exec_module = exec_and_call
        return spec

    @classmethod
    def arm(cls, name: str, callback) -> None:
        if name in sys.modules:
            callback(sys.modules[name])
        elif not any(isinstance(f, cls) and f.name == name for f in sys.meta_path):
            sys.meta_path.insert(0, cls(name, callback))


def arm() -> None:
    AfterImport.arm(TARGET, install)
