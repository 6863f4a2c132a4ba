"""Start a local Ray on demand, or join the cluster named by RAY_ADDRESS."""

from __future__ import annotations

import os

import ray

from climb_ray.config import ResourcesConfig


def ensure_ray(resources: ResourcesConfig) -> str:
    """Connect this process to Ray once; return a line saying which Ray it uses.

    With RAY_ADDRESS set (as `ray job submit` does) the process joins that cluster; otherwise a
    new local Ray is started with the configured CPUs and GPUs, never a stale one found on disk.
    """
    if ray.is_initialized():
        return f"Ray already connected ({ray.get_runtime_context().gcs_address})"
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address:
        ray.init(address=address, log_to_driver=True)
        return f"joined the Ray cluster at {address}"
    kwargs = {"address": "local", "include_dashboard": resources.include_dashboard}
    if resources.num_cpus > 0:
        kwargs["num_cpus"] = resources.num_cpus
    if resources.num_gpus >= 0:
        kwargs["num_gpus"] = resources.num_gpus
    context = ray.init(**kwargs)
    where = f"; dashboard at http://{context.dashboard_url}" if context.dashboard_url else ""
    cpus = int(ray.cluster_resources().get("CPU", 0))
    return f"started a local Ray with {cpus} CPUs{where}"


def cluster_gpus() -> float:
    """GPUs in the connected cluster (0 on CPU-only clusters)."""
    return float(ray.cluster_resources().get("GPU", 0))
