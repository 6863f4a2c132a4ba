"""Token shards as a Ray job: train the tokenizer and write one shard per super-cluster;
earlier stages run first when not done.

    ray job submit --address http://HEAD:8265 --working-dir . --entrypoint-resources '{"climb_driver": 1}' -- \
        python jobs/tokens.py --config jobs/configs/paper.yaml \
        corpus.paths=[s3://my-bucket/corpus/] run_dir=s3://my-bucket/runs/climb-1

Arguments are those of `climb-ray tokens` (see `climb-ray tokens --help`). The runtime
environment, token authentication and resources are as for jobs/pipeline.py (its docstring).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir, for `import climb_ray`

from climb_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["tokens", *sys.argv[1:]]))
