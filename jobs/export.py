"""The chosen mixture as a training dataset, as a Ray job: Parquet shards (text, cluster, doc_id)
and manifest.json in <run>/export/ (token-ID shards too with export.write_token_ids=true; a
Hugging Face dataset folder or Megatron indexed datasets and blend with --format hf or megatron);
earlier stages run first when not done.

    ray job submit --address http://HEAD:8265 --working-dir . --entrypoint-resources '{"climb_driver": 1}' -- \
        python jobs/export.py --config jobs/configs/paper.yaml \
        corpus.paths=[s3://my-bucket/corpus/] target.paths=[s3://my-bucket/target.jsonl] \
        run_dir=s3://my-bucket/runs/climb-1 export.token_budget=400000000000

Arguments are those of `climb-ray export` (see `climb-ray export --help`). The runtime
environment, token authentication and resources are as for jobs/pipeline.py (its docstring).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir, for `import climb_ray`

from climb_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
