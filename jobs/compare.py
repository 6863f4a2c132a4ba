"""CLIMB, RegMix, random and DoReMi side by side, as a Ray job: each method on the run's clusters,
target and proxy budget, once per search seed (compare.search_seeds; Ray Tune searches, DoReMi as a
task), then compare.seeds evaluation proxies per answer (Ray tasks, a GPU each where the cluster has
GPUs); the table is printed to the job's log and written to <run>/compare/table.md. Resubmitting after a kill keeps finished searches and proxies.

    ray job submit --address http://HEAD:8265 --working-dir . --entrypoint-resources '{"climb_driver": 1}' -- \
        python jobs/compare.py --config jobs/configs/paper.yaml \
        corpus.paths=[s3://my-bucket/corpus/] target.paths=[s3://my-bucket/target.jsonl] \
        run_dir=s3://my-bucket/runs/climb-1 compare.seeds=5 compare.search_seeds=3

Arguments are those of `climb-ray compare` (see `climb-ray compare --help`). The runtime
environment, token authentication and resources are as for jobs/pipeline.py (its docstring).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir, for `import climb_ray`

from climb_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
