"""The whole climb_ray pipeline as a Ray job: the same stages as `climb-ray run`.

    ray job submit --address http://HEAD:8265 --working-dir . --entrypoint-resources '{"climb_driver": 1}' -- \
        python jobs/pipeline.py --config jobs/configs/paper.yaml \
        corpus.paths=[s3://my-bucket/corpus/] target.paths=[s3://my-bucket/target.jsonl] \
        run_dir=s3://my-bucket/runs/climb-1

`climb_driver` is a resource only the head has (cluster.yaml, jobs/k8s/rayjob.yaml): asking for it
keeps the driver on the head (with other entrypoint resources Ray may place it on any worker, one
that can be pre-empted) and bounds the pipelines running at once. On a cluster without it, leave
the flag out: Ray then runs the driver on the head by default. The stages place their own work. The job joins its cluster through RAY_ADDRESS, which Ray sets for job drivers. With
token authentication on, submit with RAY_AUTH_MODE=token and RAY_AUTH_TOKEN set to the
cluster's token (`ray get-auth-token` on the head). Resubmitting the same command resumes: finished stages are skipped.
Every node needs climb_ray's dependencies: the project's image (docker/Dockerfile) has them, and this
script imports climb_ray from the job's working dir; climb-ray is not on PyPI.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working dir, for `import climb_ray`

from climb_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
