"""The tokens stage with the proxies' sample (tokens.sample=auto) vs every document (all): its seconds
and the bytes it writes under tokens/, on one corpus made up to its clusters, with a tiny proxy budget;
then the export of the sampled run, which tokenizes every document itself (tokens/full/), and whether it
equals the export of the run that tokenized everything.

The corpus is bench_scale.py's (the demo's real documents, then windows of the same text), in files of
1,000 documents (one tokenizing task each); the static encoder keeps embedding cheap; the BPE is
trained once and loaded by both (its training reads the corpus alike in both modes).

    .venv/bin/python benchmarks/bench_tokens_sample.py --docs 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def climb_ray(command: str, run: Path, settings: list[str], **kwargs) -> None:
    """The stages up to `command`, as `climb-ray <command>` runs them (in this process: one Ray for all)."""
    from climb_ray.config_io import load_config
    from climb_ray.stages.pipeline import run_pipeline

    cfg = load_config(ROOT / "climb_ray" / "configs" / "demo.yaml", [f"run_dir={run}", *settings])
    run_pipeline(cfg, until=command, skip=("search",) if command == "export" else (), **kwargs)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    import bench_scale

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--work", default=str(ROOT / "data" / "bench_tokens_sample"))
    args = parser.parse_args()
    work = Path(args.work)
    bench_scale.FILE_DOCS = 1000
    paths = bench_scale.write_corpus(work / f"corpus-{args.docs}", args.docs)
    base = work / "run-all"
    settings = [f"corpus.paths=[{','.join(str(p) for p in paths)}]", "embed.encoder=static", "embed.max_tokens=128",
                "embed.chunk_docs=2000", "cluster.k_init=50", "cluster.n_super_clusters=8", "tokens.vocab_size=4096",
                "tokens.train_docs=5000", "proxy.context=128", "proxy.batch_size=8", "proxy.steps=20",  # 20,480 tokens
                "export.weights=uniform", "export.token_budget=1000000", "export.max_epochs=10"]
    import ray

    for attempt in range(5):  # a loaded machine may start Ray too slowly for its 30 s wait
        try:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 4:
                raise
    if not (base / "cluster" / "_DONE").exists():
        climb_ray("cluster", base, settings)
    tokenizer = work / "tokenizer.json"  # trained once: both modes time tokenizing, not training
    if not tokenizer.exists():
        climb_ray("tokens", base, [*settings, "tokens.sample=all"], redo=("tokens",))
        shutil.copy(base / "tokens" / "tokenizer.json", tokenizer)
    settings.append(f"tokens.tokenizer={tokenizer}")
    out = {}
    for mode in ("all", "auto"):
        run = work / f"run-{mode}"
        if mode != "all" and not run.exists():
            shutil.copytree(base, run, ignore=shutil.ignore_patterns("tokens", "export"))
        climb_ray("tokens", run, [*settings, f"tokens.sample={mode}"], redo=("tokens",))
        marker = json.loads((run / "tokens" / "_DONE").read_text())
        out[mode] = {"seconds": marker["seconds"], "bytes": folder_bytes(run / "tokens"), "info": marker["info"]}
        climb_ray("export", run, [*settings, f"tokens.sample={mode}"], redo=("export",))
        out[mode]["export_seconds"] = json.loads((run / "export" / "_DONE").read_text())["seconds"]
    same = all((work / "run-all" / "export" / p.name).read_bytes() == p.read_bytes()
               for p in (work / "run-auto" / "export").glob("part-*.parquet"))
    a, s = out["all"], out["auto"]
    print(f"{platform.node()}: {os.cpu_count()} CPUs, {args.docs:,} documents in {len(paths)} files, "
          f"{a['info']['tokens']:,} tokens in {a['info']['clusters']} clusters; proxy budget 20,480 tokens")
    print("| tokens.sample | tokens stage s | bytes under tokens/ | tokens tokenized | export s |")
    print("|---|---|---|---|---|")
    for mode, r in out.items():
        held = r["info"].get("sample", {}).get("tokens", r["info"]["tokens"])
        print(f"| {mode} | {r['seconds']:.1f} | {r['bytes']:,} | {held:,} | {r['export_seconds']:.1f} |")
    print(f"sample / all: {s['seconds'] / a['seconds']:.2f}x seconds, {s['bytes'] / a['bytes']:.3f}x bytes; "
          f"estimated tokens {s['info']['tokens']:,} vs counted {a['info']['tokens']:,} "
          f"({100 * (s['info']['tokens'] / a['info']['tokens'] - 1):+.2f}%); exports equal: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
