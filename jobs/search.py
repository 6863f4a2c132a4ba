"""The mixture search as a Ray job: one Ray Tune trial per proxy (a GPU each where the cluster
has GPUs), the LightGBM predictor refitted after each iteration; earlier stages run first
when not done. Resubmitting after a kill restores the Tune experiment: finished trials are
not run again.

    ray job submit --address http://HEAD:8265 --working-dir . --entrypoint-resources '{"climb_driver": 1}' -- \
        python jobs/search.py --config jobs/configs/paper.yaml \
        corpus.paths=[s3://my-bucket/corpus/] target.paths=[s3://my-bucket/target.jsonl] \
        run_dir=s3://my-bucket/runs/climb-1

Arguments are those of `climb-ray search` (see `climb-ray search --help`). The runtime
environment, token authentication and resources are as for jobs/pipeline.py (its docstring).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir, for `import climb_ray`

from climb_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["search", *sys.argv[1:]]))
