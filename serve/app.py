"""The climb-ray predictor as a Ray Serve application (import path `serve.app:app`).

From the repository root, on a running Ray (`ray start --head`, or a cluster):
    serve run serve.app:app run_dir=runs/demo           # foreground, Ctrl-C stops it
    serve deploy serve/config.yaml                       # in the background; edit run_dir there first
`climb-ray serve --config demo` does the same without the Serve CLI. Args are the deployment's
user_config: run_dir (required; a path or s3://...), predictor, version, max_batch,
max_body_bytes, token_env; plus num_replicas and num_cpus. Deploying again with another
predictor or version reloads the running replicas without downtime (Serve calls reconfigure).
"""

from climb_ray.adapters.ray_serve import build_app

app = build_app
