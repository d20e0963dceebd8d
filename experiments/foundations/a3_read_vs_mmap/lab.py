"""Load a generated safetensors file with read(), mmap, numpy.memmap and safetensors; cold vs warm cache.

    python -m experiments.foundations.a3_read_vs_mmap [--quick] [--render-only] [--tensors N] [--tensor-mib N]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.common.fmt import machine_short as machine_line
from experiments.common.fmt import md_table
from experiments.common.fmt import sig as fmt
from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.common.provenance import REPO_ROOT
from experiments.common.stats import summarize
from experiments.foundations.a3_read_vs_mmap import loaders, memory_probes as probes
from experiments.foundations.a3_read_vs_mmap.probe_child import probe_loader, share_file

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 1
RESULT = "a3_read_vs_mmap"  # results/a3_read_vs_mmap.json
MIB = 1 << 20
# Every measurement runs in a freshly spawned interpreter: a forked child would inherit the
# parent's heap (freed but resident memory that a read() could reuse without a page fault).
_CTX = mp.get_context("spawn")


@dataclass
class Config:
    n_tensors: int = 32
    tensor_mib: int = 8          # 32 x 8 MiB = 256 MiB of float32
    subset_every: int = 8        # the partial loaders take one tensor in eight
    repeats: int = 3
    states: tuple[str, ...] = ("cold", "warm")
    weights_dir: str = "build/foundations/a3_read_vs_mmap"  # gitignored; never committed

    @classmethod
    def quick(cls) -> "Config":
        return cls(n_tensors=16, tensor_mib=1, repeats=2)

    def weights_path(self) -> Path:
        return REPO_ROOT / self.weights_dir / f"weights-{self.n_tensors}x{self.tensor_mib}MiB.safetensors"


def run_in_fresh_process(target, *args) -> dict:
    """Run target(conn, *args) in a spawned child and return what it sends."""
    parent, child = _CTX.Pipe(duplex=False)
    proc = _CTX.Process(target=target, args=(child, *args))
    proc.start()
    child.close()
    try:
        if not parent.poll(300):
            raise TimeoutError(f"{target.__name__} did not report")
        return parent.recv()
    finally:
        proc.join()


def prepare_cache(path: Path, state: str) -> float:
    """Return the fraction of the file in the page cache right before the probe."""
    if state == "cold":
        return probes.drop_from_page_cache(str(path))
    return probes.warm_page_cache(str(path))


def measure_loaders(cfg: Config, path: Path, log=print) -> list[dict]:
    names = loaders.tensor_names(str(path))
    wanted = {"all": names, "subset": loaders.subset(names, cfg.subset_every)}
    rows = []
    for state in cfg.states:
        for method, (_, which) in loaders.METHODS.items():
            runs = []
            for _ in range(cfg.repeats):
                cached = prepare_cache(path, state)
                run = run_in_fresh_process(probe_loader, method, str(path), wanted[which])
                run["cached_before"] = cached
                runs.append(run)
            row = {"method": method, "tensors": which, "state": state,
                   "tensor_bytes": sum(loaders.read_header(str(path))[1][n]["data_offsets"][1]
                                       - loaders.read_header(str(path))[1][n]["data_offsets"][0]
                                       for n in wanted[which]),
                   "wall_s": summarize([r["wall_s"] for r in runs]),
                   "checksum": runs[0]["checksum"], "runs": runs}
            for key in ("minor_faults", "major_faults", "read_bytes", "rchar", "rss_anon", "rss_file",
                        "cached_before"):
                row[key] = summarize([r[key] for r in runs])["median"]
            rows.append(row)
            log(f"{state:4s} {method:25s} {row['wall_s']['median'] * 1e3:8.1f} ms  faults minor "
                f"{row['minor_faults']:8.0f} major {row['major_faults']:6.0f}  read_bytes "
                f"{row['read_bytes'] / MIB:7.1f} MiB  rchar {row['rchar'] / MIB:7.1f} MiB  anon "
                f"{row['rss_anon'] / MIB:7.1f} MiB  file {row['rss_file'] / MIB:7.1f} MiB  cached {row['cached_before']:.2f}")
    return rows


def measure_sharing(path: Path) -> list[dict]:
    """Two processes load the same file at the same time: private copies vs one shared mapping."""
    probes.warm_page_cache(str(path))
    rows = []
    for how in ("read", "mmap"):
        barrier = _CTX.Barrier(2)
        pipes = [_CTX.Pipe(duplex=False) for _ in range(2)]
        procs = [_CTX.Process(target=share_file, args=(c, barrier, how, str(path))) for _, c in pipes]
        for p in procs:
            p.start()
        per_proc = [r.recv() for r, _ in pipes]
        for p in procs:
            p.join()
        rows.append({"how": how, "processes": per_proc,
                     "rss_sum": sum(p["Rss"] for p in per_proc), "pss_sum": sum(p["Pss"] for p in per_proc)})
    return rows


def measure(cfg: Config, log=print) -> dict:
    path = loaders.generate_weights(cfg.weights_path(), cfg.n_tensors, cfg.tensor_mib)
    size = path.stat().st_size
    log(f"weights file {path.relative_to(REPO_ROOT)}: {size / MIB:.1f} MiB")
    cold_check = probes.drop_from_page_cache(str(path))
    rows = measure_loaders(cfg, path, log)
    check_checksums(rows)
    sharing = measure_sharing(path)
    for s in sharing:
        log(f"two processes, {s['how']:4s}: Rss sum {s['rss_sum'] / MIB:7.1f} MiB, Pss sum {s['pss_sum'] / MIB:7.1f} MiB")
    return {"file_bytes": size, "page_size": probes.PAGE, "read_ahead_kb": probes.read_ahead_kb(str(path)),
            "cold_drop_works": cold_check < 0.05, "cached_after_drop": cold_check,
            "rows": rows, "sharing": sharing}


def check_checksums(rows: list[dict]) -> None:
    """All loaders of the same tensors must see the same numbers, in every run."""
    for which in ("all", "subset"):
        ref = next(r["checksum"] for r in rows if r["tensors"] == which)
        for r in rows:
            for run in (r["runs"] if r["tensors"] == which else []):
                if abs(run["checksum"] - ref) > 1e-9 * max(1.0, abs(ref)):
                    raise AssertionError(f"{r['method']} ({r['state']}) checksum {run['checksum']} != {ref}")


def find(rows: list[dict], method: str, state: str) -> dict:
    return next(r for r in rows if r["method"] == method and r["state"] == state)


def plot(doc: dict, path: Path, source: str) -> None:
    res = doc["results"]
    rows, states = res["rows"], doc["config"]["states"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    width = 0.8 / len(states)
    for k, state in enumerate(states):
        sel = [find(rows, m, state) for m in methods]
        xs = [i + (k - (len(states) - 1) / 2) * width for i in range(len(methods))]
        med = [r["wall_s"]["median"] * 1e3 for r in sel]
        err = [[m - r["wall_s"]["min"] * 1e3 for m, r in zip(med, sel)],
               [r["wall_s"]["max"] * 1e3 - m for m, r in zip(med, sel)]]
        axes[0].bar(xs, med, width, yerr=err, capsize=2, label=state)
        axes[1].bar(xs, [r["minor_faults"] + r["major_faults"] for r in sel], width, label=state)

    cold = [find(rows, m, states[0]) for m in methods]
    for k, (key, label) in enumerate((("read_bytes", "from the block device"), ("rchar", "through read() syscalls"))):
        axes[2].bar([i + (k - 0.5) * 0.4 for i in range(len(methods))], [r[key] / MIB for r in cold], 0.4,
                    label=label)
    axes[1].set_yscale("log")
    warm = [find(rows, m, states[-1]) for m in methods]
    axes[3].bar(range(len(methods)), [r["rss_anon"] / MIB for r in warm], label="private (RssAnon)")
    axes[3].bar(range(len(methods)), [r["rss_file"] / MIB for r in warm],
                bottom=[r["rss_anon"] / MIB for r in warm], label="file-backed (RssFile)")
    titles = ["load + checksum, ms (median, min-max)", "page faults (minor + major)",
              f"bytes read ({states[0]}), MiB", f"resident memory added ({states[-1]}), MiB"]
    for ax, title in zip(axes, titles):
        ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(f"{res['file_bytes'] / MIB:.0f} MiB safetensors file; *_partial load 1 tensor in "
                 f"{doc['config']['subset_every']}")
    save_figure(fig, path, source=source)


def readme_tables(doc: dict) -> str:
    res = doc["results"]
    table = md_table(
        ["state", "method", "tensors", "ms median (min-max)", "minor faults", "major faults",
         "from disk MiB", "via read() MiB", "RssAnon +MiB", "RssFile +MiB"],
        [[r["state"], r["method"], r["tensors"],
          f"{fmt(r['wall_s']['median'] * 1e3)} ({fmt(r['wall_s']['min'] * 1e3)}-{fmt(r['wall_s']['max'] * 1e3)})",
          fmt(int(r["minor_faults"])), fmt(int(r["major_faults"])), fmt(r["read_bytes"] / MIB),
          fmt(r["rchar"] / MIB), fmt(r["rss_anon"] / MIB), fmt(r["rss_file"] / MIB)] for r in res["rows"]])
    share = md_table(
        ["two processes load the whole file", "Rss added per process MiB", "Pss added per process MiB",
         "Pss sum MiB (real memory)"],
        [[s["how"], " / ".join(fmt(p["Rss"] / MIB) for p in s["processes"]),
          " / ".join(fmt(p["Pss"] / MIB) for p in s["processes"]), fmt(s["pss_sum"] / MIB)]
         for s in res["sharing"]])
    cold = ("dropping the file from the page cache worked (posix_fadvise DONTNEED left "
            f"{res['cached_after_drop']:.0%} cached)" if res["cold_drop_works"] else
            f"posix_fadvise DONTNEED did NOT evict the file here ({res['cached_after_drop']:.0%} still cached): "
            "the cold rows are not cold")
    return (f"Measured on: {machine_line(doc)}.\n\nFile: {res['file_bytes'] / MIB:.1f} MiB, "
            f"{doc['config']['n_tensors']} tensors; {cold}; page size {res['page_size']} B; "
            f"block-device read-ahead {res['read_ahead_kb']} KiB; {doc['config']['repeats']} repeats, counters are medians.\n\n{table}\n\n{share}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tensors", type=int, help="number of tensors in the generated file")
    parser.add_argument("--tensor-mib", type=int, help="MiB per tensor")


def linux_only(args: argparse.Namespace) -> int | None:
    """Measuring needs /proc, mincore and posix_fadvise; redrawing from the committed JSON does not."""
    if not args.render_only and not sys.platform.startswith("linux"):
        print("a3: needs Linux (/proc, mincore, posix_fadvise); skipping")
        return 0
    return None


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    cfg = Config.quick() if args.quick else Config()
    if args.tensors:
        cfg.n_tensors = args.tensors
    if args.tensor_mib:
        cfg.tensor_mib = args.tensor_mib
    print(f"a3: config {cfg}", file=sys.stderr)
    files.write(RESULT, measure(cfg), config=asdict(cfg), benchmark_version=BENCHMARK_VERSION,
                extra_packages=["safetensors"])


def render(files: LabFiles) -> dict[str, str]:
    """Plots and tables read the result file, not the in-memory results: the README shows what the JSON holds."""
    doc = files.require(RESULT)
    plot(doc, files.plot_path("a3_read_vs_mmap"), files.rel(files.result_path(RESULT)))
    return {"a3-results": readme_tables(doc)}


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, render=render, add_arguments=add_arguments,
                   early_exit=linux_only)
