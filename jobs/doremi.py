"""DoReMi's domain weights for the run's super-clusters, as a Ray job (a baseline for the search): a
reference proxy, then a Group DRO proxy (a GPU each where the cluster has GPUs); the answer goes to
<run>/doremi/weights.json. Earlier stages run first when not done; a finished DoReMi is not redone.

    ray job submit --address http://HEAD:8265 --working-dir . --entrypoint-resources '{"climb_driver": 1}' -- \
        python jobs/doremi.py --config jobs/configs/paper.yaml \
        corpus.paths=[s3://my-bucket/corpus/] run_dir=s3://my-bucket/runs/climb-1

Arguments are those of `climb-ray doremi` (see `climb-ray doremi --help`). The runtime
environment, token authentication and resources are as for jobs/pipeline.py (its docstring).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir, for `import climb_ray`

from climb_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["doremi", *sys.argv[1:]]))
