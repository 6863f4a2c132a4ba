"""Shim for the import path `serve.app:app`, which resolves only from a checkout's root; use the
package's `climb_ray.adapters.ray_serve:build_app`, which resolves wherever climb-ray is installed
(serve/config.yaml does):

    serve run climb_ray.adapters.ray_serve:build_app run_dir=/abs/run max_batch=500
"""

from climb_ray.adapters.ray_serve import build_app

app = build_app
