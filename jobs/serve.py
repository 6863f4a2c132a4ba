"""The predictor of a finished search served with Ray Serve, as a Ray job: it deploys and
returns, the app staying up on the cluster (`python jobs/serve.py --stop` as a job, or `climb-ray serve
--stop` with RAY_ADDRESS set, removes it and no other Serve app). Reach it through the
head's port 8000 (serve.host=0.0.0.0 to listen beyond the head's loopback; set a token first:
`--runtime-env-json '{"env_vars": {"CLIMB_API_TOKEN": "..."}}'`).

    ray job submit --address http://HEAD:8265 --working-dir . --entrypoint-resources '{"climb_driver": 1}' -- \
        python jobs/serve.py --config jobs/configs/paper.yaml \
        corpus.paths=[s3://my-bucket/corpus/] run_dir=s3://my-bucket/runs/climb-1

Arguments are those of `climb-ray serve` (see `climb-ray serve --help`). The runtime
environment, token authentication and resources are as for jobs/pipeline.py (its docstring).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir, for `import climb_ray`

from climb_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
