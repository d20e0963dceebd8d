"""The bench as a measuring instrument, without an engine: machine load, GPU memory (NVML faked),
scheduler counters, bootstrap intervals, distributed arguments and their refusals, a dying server."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import types

import pytest

from experiments.bench import aggregate, distributed, machine, presets, processes, serve
from experiments.common.stats import bootstrap_delta_ci
from tools import pins

STAT = "cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"


def test_cpu_times_and_shares_from_proc_stat():
    a = machine.read_cpu_times(STAT.format(user=100, system=50, idle=800, steal=50))
    b = machine.read_cpu_times(STAT.format(user=160, system=70, idle=900, steal=70))
    shares = machine.usage_between(a, b)
    assert shares["busy_share"] == pytest.approx(80 / 200) and shares["steal_share"] == pytest.approx(20 / 200)
    assert machine.read_cpu_times().total > 0  # the real /proc/stat parses


def test_busy_machine_refused_or_flagged(capsys):
    sample = {"busy_share": 0.6, "steal_share": 0.05, "loadavg_1m": 3.2, "cpu_count": 2, "sample_s": 3}
    with pytest.raises(SystemExit, match=r"65% of 2 CPUs .*--allow-busy"):
        machine.check_quiet(sample, allow_busy=False)
    assert machine.check_quiet(sample, allow_busy=True) is True
    assert "WARNING" in capsys.readouterr().out
    assert machine.check_quiet({**sample, "busy_share": 0.1, "steal_share": 0.0}, allow_busy=False) is False


def fake_pynvml(monkeypatch, procs_by_device: list[list[tuple[int, int]]], used: list[int]):
    """A stand-in for nvidia-ml-py's `pynvml` module: per-device process lists and used memory."""
    mod = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    mod.NVMLError = NVMLError
    mod.nvmlInit = lambda: None
    mod.nvmlShutdown = lambda: None
    mod.nvmlDeviceGetCount = lambda: len(procs_by_device)
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetComputeRunningProcesses = lambda h: [types.SimpleNamespace(pid=p, usedGpuMemory=m)
                                                          for p, m in procs_by_device[h]]
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=used[h])
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    return mod


def test_gpu_memory_sampler_sums_the_process_tree_on_every_gpu(monkeypatch, tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # Two GPUs (TP=2): the engine's pid on both, plus someone else's process that must not count.
        fake_pynvml(monkeypatch, [[(child.pid, 3 << 30), (999_999, 5 << 30)], [(child.pid, 2 << 30)]],
                    used=[8 << 30, 2 << 30])
        with processes.GpuMemorySampler(child.pid, interval_s=0.05) as gpu:
            time.sleep(0.3)
        res = gpu.result()
    finally:
        child.kill()
        child.wait()
    assert res["peak_gpu_mem_bytes"] == 5 << 30 and res["gpu_mem_unavailable"] is None
    assert res["peak_gpu_device_mem_bytes"] == 0  # device usage did not grow while sampling


def test_gpu_memory_sampler_without_nvml_records_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails, as on the CPU build
    with processes.GpuMemorySampler(1) as gpu:
        pass
    res = gpu.result()
    assert res["peak_gpu_mem_bytes"] is None and "pynvml" in res["gpu_mem_unavailable"]


def test_new_metrics_reach_the_summary():
    run = {"variant": "baseline", "repeat": 1, "mode": "serve", "machine": {"busy_share": 0.9, "steal_share": 0.1},
           "result": {"workloads": {"w": {"output_throughput": 10.0, "cpu_s_per_output_token": 0.002,
                                          "scheduler": {"steps": 40, "tokens_per_step": 12.5, "preemptions": 0}}},
                      "peak_rss_bytes": 2**30, "peak_gpu_mem_bytes": 3 * 2**30}}
    got = {(r["workload"], r["metric"]): r["value"] for r in aggregate.metric_rows(run)}
    assert got[("w", "cpu_ms_per_output_token")] == pytest.approx(2.0)
    assert got[("w", "tokens_per_step")] == 12.5 and got[("w", "preemptions")] == 0
    assert got[("(all)", "peak_gpu_mem_mb")] == 3072 and got[("(all)", "steal_share")] == 0.1
    assert aggregate.direction("cpu_ms_per_output_token") == -1


def test_bootstrap_interval_of_a_delta():
    assert bootstrap_delta_ci([100.0], [101.0]) is None
    lo, hi = bootstrap_delta_ci([100.0, 101.0, 99.0], [110.0, 111.0, 109.0])
    assert 0.07 < lo <= 0.10 <= hi < 0.13
    lo, hi = bootstrap_delta_ci([100.0, 120.0, 80.0], [100.0, 120.0, 80.0])
    assert lo < 0 < hi  # A/A: the interval straddles zero
    assert bootstrap_delta_ci([1.0, 2.0], [3.0, 4.0]) == bootstrap_delta_ci([1.0, 2.0], [3.0, 4.0])  # seeded


def test_scheduler_counters_from_metrics_text():
    text = ('vllm:num_preemptions_total{engine="0",model_name="m"} 3.0\n'
            'vllm:iteration_tokens_total_count{engine="0",model_name="m"} 40.0\n'
            'vllm:iteration_tokens_total_sum{engine="0",model_name="m"} 500.0\n'
            'vllm:iteration_tokens_total_count{engine="1",model_name="m"} 10.0\n')
    assert serve.scheduler_counters(text) == {"preemptions": 3.0, "steps": 50.0, "step_tokens": 500.0}


def test_server_dying_mid_run_is_named():
    server = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    client = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(RuntimeError, match=r"server died mid-run \(exit code 7\)"):
            serve.wait_client(client, [server], timeout_s=20)
    finally:
        client.kill()
        client.wait()


@pytest.mark.parametrize("kwargs,match", [
    ({"tp": 2}, r"TP=2 does not divide the 3 attention heads .* choose TP from \[1, 3\]"),
    ({"tp": 0}, "TP must be >= 1"),
    ({"backend": "slurm"}, "DISTRIBUTED_BACKEND must be one of"),
    ({"nnodes": 2, "backend": "mp"}, "needs --master-addr"),
    ({"nnodes": 2, "master_addr": "127.0.0.1", "node_rank": 1, "master_port": 1},
     "master 127.0.0.1:1 is unreachable"),
])
def test_bad_distributed_arguments_are_refused_with_the_cause(kwargs, match):
    with pytest.raises(SystemExit, match=match):
        distributed.engine_args(presets.EMBEDDED_MODEL, **kwargs)


def test_missing_ray_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SystemExit, match="Ray is not installed"):
        distributed.engine_args(str(pins.REPO_ROOT / "models" / "tiny-llama"), tp=2, backend="ray",
                                platform="cuda")


def test_ray_on_the_cpu_platform_is_refused_with_vllms_reason():
    with pytest.raises(SystemExit, match="not supported by vLLM 0.32.0's CPU platform"):
        distributed.engine_args(str(pins.REPO_ROOT / "models" / "tiny-llama"), tp=2, backend="ray")


def test_distributed_arguments_reach_every_variant_and_the_manifest_config():
    model = str(pins.REPO_ROOT / "models" / "tiny-llama")  # 4 heads: TP=2 splits them
    args = distributed.engine_args(model, tp=2, backend="mp")
    assert args == {"tensor_parallel_size": 2, "distributed_executor_backend": "mp"}
    cfg = presets.resolve("smoke", model=model, distributed=args)
    assert cfg["distributed"] == args and cfg["engine_args"]["tensor_parallel_size"] == 2
    assert all(v["env"]["VLLM_CPU_SIM_MULTI_NUMA"] == "1" for v in cfg["variant_defs"].values())
    assert "--tensor-parallel-size" in serve.engine_flags(cfg["engine_args"])
    assert presets.resolve("smoke")["distributed"] == {}


def test_unreachable_server_port_is_named():
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(RuntimeError, match=r"alive but http://127.0.0.1:\d+/health did not answer .* unreachable"):
            serve.wait_ready(f"http://127.0.0.1:{serve.free_port()}", server, timeout_s=1.5)
    finally:
        server.kill()
        server.wait()


def test_offline_child_whose_engine_core_died_is_stopped_and_named(tmp_path):
    """Seen with patch 0001 before its fix: EngineCore segfaulted, the frontend hung in clean-up."""
    from experiments.bench import runner

    log = tmp_path / "offline.log"
    hung = ("import sys, time; print('WARNING [core_client.py:817] [shutdown] MPClient: engine core exited "
            "unexpectedly; starting cleanup', flush=True); time.sleep(60)")
    proc = processes.start([sys.executable, "-c", hung], processes.variant_env("baseline"), log)
    try:
        t0 = time.time()
        with pytest.raises(RuntimeError, match="EngineCore process died during the offline run"):
            runner.wait_offline_child(proc, log, timeout_s=30, grace_s=1)
        assert time.time() - t0 < 15
    finally:
        processes.kill_tree(proc, grace_s=1)


def test_tree_cpu_sampler_keeps_the_cpu_of_children_that_exited():
    burn = ("import subprocess, sys, time; "
            "subprocess.run([sys.executable, '-c', 'import time; t=time.process_time()\\n"
            "while time.process_time() - t < 0.6: pass']); time.sleep(1)")
    proc = subprocess.Popen([sys.executable, "-c", burn])
    with processes.TreeCpuSampler(proc.pid, interval_s=0.05) as cpu:
        proc.wait(timeout=30)
    assert cpu.cpu_s >= 0.5  # the grandchild's burn, read before it exited


def test_others_share_subtracts_the_runs_own_cpu():
    load = {"busy_cpu_s": 15.0, "cpu_s_available": 20.0}
    assert machine.others_share(load, own_cpu_s=10.0) == pytest.approx(0.25)
    assert machine.others_share(load, own_cpu_s=None) is None


def test_busy_bench_says_so_above_its_table():
    from experiments.bench import runner

    cfg = {"busy_machine": True, "machine_before": {"busy_share": 0.9, "cpu_count": 2, "loadavg_1m": 7.6}}
    assert runner.busy_warning(cfg).startswith("> BUSY MACHINE: before the start other processes kept 90% of 2")
    assert runner.busy_warning({}) == ""


def test_engine_and_client_get_separate_cores_where_there_are_enough():
    assert processes.core_split({0, 1}) == (None, None)
    assert processes.core_split({0, 1, 2, 3, 4, 5, 6, 7}) == ({0, 1, 2, 3, 4, 5, 6}, {7})
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10)"])
    try:
        mine = os.sched_getaffinity(0)
        one = {min(mine)}
        processes.pin(child.pid, one)
        assert os.sched_getaffinity(child.pid) == one
        processes.pin(child.pid, None)  # no-op
        assert os.sched_getaffinity(child.pid) == one
    finally:
        child.kill()
        child.wait()


def test_client_plan_gates_warms_up_then_interleaves_timed_passes(tmp_path):
    cfg = presets.resolve("default")
    metas = {n: {"jsonl": f"/wl/{n}.jsonl", "num_requests": 64} for n in cfg["workloads"]}
    plan = serve.client_plan(cfg, metas, [{"name": "baseline", "port": 8123, "pid": 42, "run_dir": tmp_path}])
    srv = plan["servers"]["baseline"]
    assert plan["gate"] == cfg["gate"] and plan["reset_prefix_cache"] and srv["server_pid"] == 42
    assert [a[a.index("--num-prompts") + 1] for a in srv["warmup"]] == ["8", "8"]
    assert not any("--save-result" in a for a in srv["warmup"])  # warm-up passes are not recorded
    assert [(p["workload"], p["pass"]) for p in plan["passes"]] == [
        (n, k) for k in range(1, cfg["serve_passes"] + 1) for n in cfg["workloads"]]
    assert len({p["result_file"] for p in plan["passes"]}) == len(plan["passes"])


def test_interleaved_plan_alternates_servers_a_b_b_a(tmp_path):
    """Several servers: pass k of a workload on each back to back, the order reversed every other k,
    each server gated and warmed up, each pass's JSON in its own server's run directory."""
    cfg = {**presets.resolve("aa-paired"), "serve_passes": 4}
    metas = {n: {"jsonl": f"/wl/{n}.jsonl", "num_requests": 64} for n in cfg["workloads"]}
    servers = [{"name": v, "port": 8000 + i, "pid": 40 + i, "run_dir": tmp_path / v} for i, v in enumerate("AB")]
    plan = serve.client_plan(cfg, metas, servers)
    assert [p["server"] for p in plan["passes"]] == list("ABBAABBA")
    assert [p["pass"] for p in plan["passes"]] == [1, 1, 2, 2, 3, 3, 4, 4]
    for p in plan["passes"]:
        args = p["args"]
        srv = next(s for s in servers if s["name"] == p["server"])
        assert args[args.index("--port") + 1] == str(srv["port"])
        assert args[args.index("--result-dir") + 1] == str(srv["run_dir"])
    assert set(plan["servers"]) == {"A", "B"} and all(s["warmup"] for s in plan["servers"].values())


def test_one_client_process_runs_every_pass_against_a_server(tmp_path):
    """experiments.bench.serve_client against the instant stub: one process, two recorded passes,
    each workload's figure the median of its passes, per-request latencies pooled."""
    from experiments.bench import workloads

    wl = workloads.generate(workloads.make_spec("shared_prefix_chat", num_requests=8, output_tokens=4), seed=0)
    meta = workloads.save(wl, tmp_path / "workloads")
    port = serve.free_port()
    server = processes.start([sys.executable, "-m", "experiments.bench.stub_server", "--port", str(port)],
                             processes.variant_env("baseline"), tmp_path / "stub.log")
    cfg = {"model": str(pins.REPO_ROOT / "models" / "tiny-llama"), "seed": 0, "request_rate": {},
           "serve_passes": 2, "gate": None}
    try:
        serve.wait_ready(f"http://127.0.0.1:{port}", server, 60)
        plan = {**serve.client_plan(cfg, {wl.name: meta}, [{"name": "stub", "port": port, "pid": server.pid,
                                                            "run_dir": tmp_path}]),
                "reset_prefix_cache": False}  # the stub has no cache to reset
        client = serve.run_client_plan(plan, tmp_path, [server], timeout_s=300)
    finally:
        processes.kill_tree(server, grace_s=5)
    assert [p["pass"] for p in client["passes"]] == [1, 2] and client["client_cpu_s"] > 0
    assert all(p["server_cpu_s"] >= 0 for p in client["passes"])
    summary = serve.summarize_workload(cfg, wl.name, meta, client["passes"], tmp_path)
    assert summary["completed"] == 8 and len(summary["passes"]) == 2 and len(summary["ttfts_s"]) == 16
    per_pass = [p["output_throughput"] for p in summary["passes"]]
    assert summary["output_throughput"] == pytest.approx(sum(per_pass) / 2)  # median of two


def test_bench_help_prints(capsys):
    """`python -m experiments.bench --help` once crashed on a bare % in a help string (argparse formats them)."""
    from experiments.bench.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "more than 25% of the CPUs busy" in " ".join(capsys.readouterr().out.split())


def test_core_layouts_on_two_cores():
    """reserved: frontend and client on the core vLLM's CPU worker leaves free, the worker bound to the rest."""
    assert processes.core_layout("reserved", {0, 1}) == {"server": {1}, "client": {1},
                                                        "env": {"VLLM_CPU_OMP_THREADS_BIND": "0"}}
    assert processes.core_layout("reserved", {0, 1, 2, 3})["env"] == {"VLLM_CPU_OMP_THREADS_BIND": "0,1,2"}
    assert processes.core_layout("shared", {0, 1, 2, 3}) == {"server": None, "client": None, "env": {}}
    assert processes.core_layout("auto", {0, 1}) == {"server": None, "client": None, "env": {}}
    assert processes.core_layout("auto", {0, 1, 2, 3})["client"] == {3}
    with pytest.raises(SystemExit, match="unknown core layout 'pinned'"):
        processes.core_layout("pinned")
    with pytest.raises(SystemExit, match="needs TP = PP = DP = 1"):
        processes.core_layout("reserved", {0, 1}, ranks=2)


def test_reserved_layout_refuses_more_than_one_rank(capsys):
    from experiments.bench.__main__ import main

    assert main(["--preset", "smoke", "--model", str(presets.REPO_ROOT / "models" / "tiny-llama"), "--tp", "2",
                 "--core-layout", "reserved"]) == 2
    assert "needs TP = PP = DP = 1" in capsys.readouterr().err


def test_one_client_alternates_passes_between_two_servers(tmp_path):
    """The paired layout end to end against two instant stubs: every pass lands in its own server's
    directory, in A B B A order, and each server's passes summarize on their own."""
    from experiments.bench import workloads

    wl = workloads.generate(workloads.make_spec("shared_prefix_chat", num_requests=4, output_tokens=4), seed=0)
    meta = workloads.save(wl, tmp_path / "workloads")
    cfg = {"model": str(pins.REPO_ROOT / "models" / "tiny-llama"), "seed": 0, "request_rate": {},
           "serve_passes": 2, "gate": None}
    procs, servers = [], []
    try:
        for name in ("A", "B"):
            port = serve.free_port()
            (tmp_path / name).mkdir()
            procs.append(processes.start([sys.executable, "-m", "experiments.bench.stub_server", "--port", str(port)],
                                         processes.variant_env("baseline"), tmp_path / name / "stub.log"))
            servers.append({"name": name, "port": port, "pid": procs[-1].pid, "run_dir": tmp_path / name})
            serve.wait_ready(f"http://127.0.0.1:{port}", procs[-1], 60)
        plan = {**serve.client_plan(cfg, {wl.name: meta}, servers), "reset_prefix_cache": False}
        client = serve.run_client_plan(plan, tmp_path, procs, timeout_s=300)
    finally:
        for p in procs:
            processes.kill_tree(p, grace_s=5)
    assert [(p["server"], p["pass"]) for p in client["passes"]] == [("A", 1), ("B", 1), ("B", 2), ("A", 2)]
    for name in ("A", "B"):
        mine = [p for p in client["passes"] if p["server"] == name]
        assert sorted(f.name for f in (tmp_path / name).glob("bench-serve-*.json")) == [p["result_file"] for p in mine]
        assert serve.summarize_workload(cfg, wl.name, meta, mine, tmp_path / name)["completed"] == 4
