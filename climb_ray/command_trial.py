"""A proxy trial run by your own trainer (proxy.command: Megatron-LM, NeMo, torchtitan, a script).

The mixture goes in as a JSON file and as a Megatron-style blend (`0.3 /data/sc00 0.7 /data/sc01`);
the score comes back in a JSON file, `{"score": x}`, higher is better. The command's output is kept
in the trial folder (trainer.stdout.log, trainer.stderr.log); a non-zero exit, a timeout or a missing
or invalid score fails the trial.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from climb_ray.artifacts import TOKENS_META
from climb_ray.config import Config

MIXTURE, SCORE, STDOUT, STDERR = "mixture.json", "score.json", "trainer.stdout.log", "trainer.stderr.log"


class CommandError(RuntimeError):
    """The trainer command failed: the message says how, and where its logs are."""


def data_prefixes(template: str, tokens_url: str, meta: dict) -> list[list[tuple[str, float]]]:
    """Each super-cluster's data prefixes, each with its share of the cluster: the template filled in,
    or the run's token parts <tokens>/<cluster>/<part> (tokens/meta.json), shared by their tokens."""
    from climb_ray.tokens import cluster_parts

    if template:
        return [[(template.format(name=name, index=i, tokens_dir=tokens_url), 1.0)]
                for i, name in enumerate(meta["clusters"])]
    out = []
    for name in meta["clusters"]:
        parts = cluster_parts(meta, name)
        total = sum(p.tokens for p in parts)
        out.append([(f"{tokens_url}/{p.prefix}", p.tokens / total) for p in parts])
    return out


def blend(weights, prefixes: list[list[tuple[str, float]]]) -> list[str]:
    """Megatron's --data-path list: weight, prefix, weight, prefix, ... (a cluster's weight split over its
    prefixes by their shares; clusters of weight 0 left out)."""
    out = []
    for w, shares in zip(weights, prefixes):
        if w > 0:
            for prefix, share in shares:
                out += [f"{w * share:.8g}", prefix]
    return out


def mixture_json(names: list[str], weights, prefixes: list[list[tuple[str, float]]], p, *, seed: int,
                 index: int | None, tokens_dir: str) -> dict:
    """What a trainer gets in {mixture_json} (and `climb-ray ask` hands out): the normalised weights per
    cluster, the blend, each cluster's data prefixes, the seed, the trial's index and proxy `p`'s token budget."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return {"weights": {n: float(x) for n, x in zip(names, w)}, "blend": " ".join(blend(w, prefixes)),
            "data_prefixes": {n: [prefix for prefix, _ in shares] for n, shares in zip(names, prefixes)},
            "seed": seed, "index": index, "tokens_dir": tokens_dir,
            "steps": p.steps, "batch_size": p.batch_size, "context": p.context, "tokens": p.tokens}


class CommandRunner:
    """Runs proxy.command for each mixture; the same call as ProxyRunner's, plus the trial folder."""

    def __init__(self, cfg: Config, tokens_url: str):
        import fsspec

        with fsspec.open(posixpath.join(tokens_url.rstrip("/"), posixpath.basename(TOKENS_META)), "r") as src:
            meta = json.load(src)
        self.names: list[str] = list(meta["clusters"])
        self.cfg, self.tokens_url = cfg, tokens_url.rstrip("/")
        self.prefixes = data_prefixes(cfg.proxy.data_prefix, self.tokens_url, meta)

    def __call__(self, weights, *, seed: int, trial_dir: str | None = None, index: int | None = None) -> dict:
        """Run the command on `weights` (one per cluster) in `trial_dir`; if None, in a new temporary
        folder, removed once the score is read (kept when the trial fails, for its logs)."""
        w = np.asarray(weights, dtype=np.float64)
        if len(w) != len(self.names) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights={list(weights)!r}: need {len(self.names)} finite weights >= 0 with a "
                             "positive sum")
        w = w / w.sum()
        temporary = not trial_dir
        trial_dir = os.path.abspath(trial_dir or tempfile.mkdtemp(prefix="climb-ray-command-"))
        os.makedirs(trial_dir, exist_ok=True)
        paths = {name: os.path.join(trial_dir, name) for name in (MIXTURE, SCORE, STDOUT, STDERR)}
        parts = blend(w, self.prefixes)
        p = self.cfg.proxy
        mixture = mixture_json(self.names, w, self.prefixes, p, seed=seed, index=index, tokens_dir=self.tokens_url)
        with open(paths[MIXTURE], "w") as out:
            json.dump(mixture, out, indent=2)
        if os.path.exists(paths[SCORE]):
            os.remove(paths[SCORE])  # an earlier attempt's
        values = {"mixture_json": paths[MIXTURE], "score_file": paths[SCORE], "trial_dir": trial_dir,
                  "seed": str(seed), "index": "" if index is None else str(index), "tokens_dir": self.tokens_url,
                  "python": sys.executable}
        command = p.command.format(**{k: shlex.quote(v) for k, v in values.items()},
                                   blend=" ".join(shlex.quote(x) for x in parts))
        env = {**os.environ, "CLIMB_MIXTURE_JSON": paths[MIXTURE], "CLIMB_SCORE_FILE": paths[SCORE],
               "CLIMB_TRIAL_DIR": trial_dir, "CLIMB_SEED": str(seed), "CLIMB_BLEND": mixture["blend"]}
        start = time.perf_counter()
        code = run_command(command, env, paths[STDOUT], paths[STDERR], p.command_timeout_s, trial_dir)
        seconds = time.perf_counter() - start
        if code != 0:
            raise CommandError(f"proxy.command exited with status {code}{last_line(paths[STDERR])}; "
                               f"its output is in {trial_dir}")
        result = read_score(paths[SCORE], trial_dir)
        if temporary:
            shutil.rmtree(trial_dir, ignore_errors=True)
        return {"score": result["score"], "direction": "higher_is_better", "targets": [],
                "weights": mixture["weights"], "seed": seed, "device": "command", "command": command,
                "trial_dir": None if temporary else trial_dir, "train_seconds": seconds, "score_seconds": 0.0,
                "trainer": {k: v for k, v in result.items() if k != "score"}}


def run_command(command: str, env: dict, stdout: str, stderr: str, timeout_s: float, trial_dir: str) -> int:
    """The command's exit status; run by the shell in its own process group, from the folder climb-ray
    started in (Tune moves trials elsewhere). The group is killed (SIGKILL) once the shell exits, on a
    timeout and whenever Python unwinds here (an exception, Ctrl-C), so background children do not
    outlive the trial. When this process dies without unwinding (a Ray worker killed with SIGKILL), only
    on Linux and only the shell's own process gets SIGKILL (the trainer itself when the command is one
    simple command or ends in `exec ...`); processes it started are not killed then."""
    cwd = os.environ.get("TUNE_ORIG_WORKING_DIR", os.getcwd())
    with open(stdout, "a") as out, open(stderr, "a") as err:
        err.write(f"# climb-ray {time.strftime('%Y-%m-%d %H:%M:%S')}: {command}\n")
        err.flush()
        proc = subprocess.Popen(command, shell=True, cwd=cwd, env=env, stdout=out, stderr=err,
                                start_new_session=True, preexec_fn=_die_with_parent())
        try:
            return proc.wait(timeout=timeout_s or None)
        except subprocess.TimeoutExpired:
            raise CommandError(f"proxy.command ran past proxy.command_timeout_s={timeout_s:g} s and was killed; "
                               f"its output is in {trial_dir}") from None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group, also after a normal exit
            except ProcessLookupError:
                pass
            proc.wait()


def _die_with_parent():
    """A preexec_fn asking Linux to SIGKILL the child when this process dies; None where prctl is missing."""
    import ctypes
    import ctypes.util

    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec():
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return preexec


def read_score(path: str, trial_dir: str) -> dict:
    """The score file's JSON object, with a finite number `score`; CommandError naming what is wrong."""
    if not os.path.exists(path):
        raise CommandError(f"proxy.command exited 0 but wrote no score file {path} "
                           f"(it must write {{\"score\": <number>}} there); its output is in {trial_dir}")
    try:
        with open(path) as src:
            result = json.load(src)
    except ValueError as err:
        raise CommandError(f"score file {path}: not JSON ({err})") from None
    score = result.get("score") if isinstance(result, dict) else None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise CommandError(f"score file {path}: needs a finite number 'score' (higher is better), got "
                           f"{json.dumps(result)[:200]}")
    return {**result, "score": float(score)}


def last_line(path: str) -> str:
    """', last stderr line: ...' from the command's stderr log, or ''."""
    with open(path, errors="replace") as src:
        lines = [line.strip() for line in src.read()[-4000:].splitlines()
                 if line.strip() and not line.startswith("# climb-ray ")]
    return f" (last stderr line: {lines[-1][:300]!r})" if lines else ""
