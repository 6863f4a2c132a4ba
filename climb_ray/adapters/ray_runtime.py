"""Start a local Ray on demand, or join the cluster named by RAY_ADDRESS."""

from __future__ import annotations

import logging
import os

import ray

from climb_ray.config import ConfigError, ResourcesConfig


def _auth_notice_off(record: logging.LogRecord) -> bool:
    """A new local Ray's notice that token authentication is on (its warning when it is off stays)."""
    return not record.getMessage().startswith("Token authentication is enabled for this")


def ensure_ray(resources: ResourcesConfig) -> str:
    """Connect this process to Ray once; return a line saying which Ray it uses.

    With RAY_ADDRESS set (as `ray job submit` does) the process joins that cluster; otherwise a
    new local Ray is started with the configured CPUs and GPUs, never a stale one found on disk.
    """
    if ray.is_initialized():
        return f"Ray already connected ({ray.get_runtime_context().gcs_address})"
    from climb_ray import log

    address = os.environ.get("RAY_ADDRESS", "").strip()
    quiet = {} if log.verbose() else {"logging_level": logging.WARNING}  # Ray's start-up lines: its log files
    if not log.verbose():
        logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_auth_notice_off)
    if address:
        ray.init(address=address, log_to_driver=True, **quiet)
        quiet_ray()
        return f"joined the Ray cluster at {address}"
    kwargs = {"address": "local", "include_dashboard": resources.include_dashboard, **quiet}
    if resources.num_cpus > 0:
        kwargs["num_cpus"] = resources.num_cpus
    if resources.num_gpus >= 0:
        kwargs["num_gpus"] = resources.num_gpus
    context = ray.init(**kwargs)
    quiet_ray()
    where = f"; dashboard at http://{context.dashboard_url}" if context.dashboard_url else ""
    cpus = int(ray.cluster_resources().get("CPU", 0))
    return f"started a local Ray with {cpus} CPUs{where}"


def quiet_ray() -> None:
    """After ray.init: Ray Data's progress and operator lines (still in its log file, ray-data.log of the
    session) and Tune's experiment table off the terminal, unless -v."""
    from climb_ray import log

    if log.verbose():
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's legacy output: silent at verbose=0 (the new one
    # still prints its experiment table and TensorBoard hint)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    for handler in logging.getLogger("ray.data").handlers:
        if not hasattr(handler, "baseFilename") and type(handler).__name__ != "SessionFileHandler":
            handler.setLevel(logging.WARNING)
            handler.addFilter(lambda record: "Progress bars disabled" not in record.getMessage())


def shutdown() -> None:
    """Disconnect; a local Ray this process started stops with it (Serve included)."""
    ray.shutdown()


def cluster_gpus() -> float:
    """GPUs in the connected cluster now (0 on CPU-only clusters)."""
    return float(ray.cluster_resources().get("GPU", 0))


def autoscaler_max_gpus() -> float:
    """The most GPUs the cluster's autoscaler can bring up (its node types x max workers, as the head
    reports them to the GCS; Ray Data and Train read the same), or 0 without an autoscaler."""
    try:
        from ray._private.state import state

        limits = state.get_max_resources_from_cluster_config() or {}
    except Exception:  # a private API of Ray: treat a change there as "no autoscaler"
        return 0.0
    return float(limits.get("GPU", 0) or 0)


class DeviceError(ConfigError):
    """resources.device=gpu on a cluster that has no GPU and cannot get one."""


def gpu_plan(device: str, gpus_now: float, gpus_max: float) -> tuple[bool, float]:
    """Whether the GPU work (encoder actors, proxy trials) asks for GPUs, and how many GPUs it can
    count on: those present, else those the autoscaler can add (GPU worker types at min 0)."""
    reachable = max(gpus_now, gpus_max)
    if device == "cpu":
        return False, 0.0
    if device == "gpu" and reachable <= 0:
        raise DeviceError("resources.device=gpu: the Ray cluster has no GPU and its autoscaler cannot add one "
                          "(use resources.device=auto or cpu, or add a GPU worker type)")
    return reachable > 0, reachable


def use_gpus(device: str) -> tuple[bool, float]:
    """gpu_plan for the connected cluster."""
    return gpu_plan(device, cluster_gpus(), autoscaler_max_gpus())
