"""What `climb-ray serve` does: deploy a run's predictor with Ray Serve, serve it until Ctrl-C (hot-reloading
when asked), stop it, and the lines it prints. cli.py only parses the arguments."""

from __future__ import annotations

import json

from climb_ray import log
from climb_ray.artifacts import TOKENS_META
from climb_ray.config import Config

LOG = log.get(__name__)


def serve(cfg: Config, *, predictor: str, version: str, detach: bool, drop_token: bool = False,
          insecure: bool = False) -> int:
    """Serve run_dir's predictor with Ray Serve; on a Ray we started, until Ctrl-C (hot-reloading
    the predictor file every serve.watch_s seconds when set)."""
    import os

    from climb_ray.adapters.ray_serve import is_loopback
    from climb_ray.config import ConfigError
    from climb_ray.served_model import ServedModel

    s = cfg.serve
    if not is_loopback(s.host) and not os.environ.get(s.token_env) and not insecure:
        raise ConfigError(f"serve.host={s.host} is reachable from other machines and ${s.token_env} is not set: "
                          f"set a bearer token in ${s.token_env}, or pass --insecure to serve without one")
    model = ServedModel.load(cfg.run_dir, predictor, version=version)  # a missing search fails here, before Ray
    joined = bool(os.environ.get("RAY_ADDRESS", "").strip())
    if not joined:
        _check_port_free(s.host, s.port)
    from climb_ray.adapters.ray_runtime import ensure_ray
    from climb_ray.adapters.ray_serve import DIRECT_INGRESS_ENV, direct_urls, start, user_config

    if s.direct_ingress and not joined:  # read where Serve's controller and replicas start: our new Ray's processes
        os.environ[DIRECT_INGRESS_ENV] = "1"
    LOG.info(f"climb-ray serve: {ensure_ray(cfg.resources)}")

    def deploy() -> str:
        config = user_config(cfg.run_dir, predictor=predictor, version=version, max_batch=s.max_batch,
                             max_body_bytes=s.max_body_bytes, token_env=s.token_env, drop_token=drop_token,
                             allowed_hosts=s.allowed_hosts)
        return start(config, host=s.host, port=s.port, num_replicas=s.num_replicas, num_cpus=s.cpus_per_replica,
                     route_prefix=s.route_prefix, access_log=s.access_log)

    url = deploy()
    print_serving(url, model, token=bool(os.environ.get(s.token_env)), token_env=s.token_env)
    direct = direct_urls(s.host)
    for i, address in enumerate(direct):
        LOG.info(f"  direct        {address}/   (replica {i + 1} of {len(direct)} answering itself: no proxy hop)")
    if s.direct_ingress and not direct:
        LOG.info(f"serve.direct_ingress: this Ray's Serve runs without direct ingress (it is set where Serve starts: "
                 f"{DIRECT_INGRESS_ENV}=1 in the environment of `ray start`); serving through the proxy only")
    if joined or detach:
        LOG.info("deployed; it keeps serving on the cluster (stop it with: climb-ray serve --stop, which removes this "
                 "application only)")
        return 0
    watching = s.watch_s > 0 and not version
    LOG.info("serving until Ctrl-C" + (f"; checking {predictor} for a new fit every {s.watch_s:g} s" if watching else ""))
    _serve_until_interrupted(cfg, predictor, deploy, model.info["version"] if watching else None)
    return 0


def stop_serving() -> int:
    """Delete our Serve application from the cluster at RAY_ADDRESS; Serve and other apps keep running."""
    import os

    from climb_ray.config import ConfigError

    if not os.environ.get("RAY_ADDRESS", "").strip():
        raise ConfigError("serve --stop removes the predictor from a cluster: set RAY_ADDRESS to it (a local "
                          "`climb-ray serve` stops with Ctrl-C)")
    from climb_ray.adapters.ray_runtime import ensure_ray
    from climb_ray.adapters.ray_serve import APP_NAME, stop
    from climb_ray.config import ResourcesConfig

    LOG.info(f"climb-ray serve --stop: {ensure_ray(ResourcesConfig())}")
    if stop():
        LOG.info(f"deleted the Serve application {APP_NAME!r}; other applications and Serve itself keep running")
    else:
        LOG.info(f"no Serve application {APP_NAME!r} runs there: nothing to stop")
    return 0


def _serve_until_interrupted(cfg: Config, predictor: str, deploy, seen: str | None) -> None:
    """Sleep until Ctrl-C; with `seen` (the served file's hash), redeploy when the file changes."""
    import signal

    from climb_ray.adapters.ray_runtime import shutdown

    def stop_on(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C and a service manager's SIGTERM stop the server, also where SIGINT came in ignored (a shell
    # starts background jobs that way, and Python then raises no KeyboardInterrupt)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_on)
    try:
        watch(cfg, predictor, deploy, seen)
    except KeyboardInterrupt:  # only a Ray this process started gets here: stopping it stops Serve at once
        LOG.info("\nstopping the server")
        shutdown()


def watch(cfg: Config, predictor: str, deploy, seen: str | None) -> None:
    """Sleep; with `seen`, redeploy each time the predictor file's hash changes. A failed redeploy is
    one line and the server goes on with the version it has; the next check tries again."""
    import time

    failed = None
    while True:
        time.sleep(cfg.serve.watch_s if seen else 3600)
        fresh = _predictor_version(cfg.run_dir, predictor) if seen else None
        if not fresh or fresh == seen:
            continue
        try:
            deploy()  # the file's hash is in user_config: the replicas reconfigure
        except Exception as err:  # a transient Serve error or a broken file: keep serving, retry next check
            if fresh != failed:
                LOG.info(f"could not reload the predictor (version {fresh}): {type(err).__name__}: {err}; still "
                         f"serving {seen}, trying again every {cfg.serve.watch_s:g} s")
                failed = fresh
            continue
        seen, failed = fresh, None
        LOG.info(f"reloaded the predictor: version {fresh}")


def print_serving(url: str, model, *, token: bool, token_env: str) -> None:
    info = model.info
    quality = f"held-out Spearman {info['spearman']:.3f}" if info["spearman"] is not None else "no held-out figures"
    auth = f' -H "Authorization: Bearer ${token_env}"' if token else ""
    example = json.dumps({"weights": model.as_dict(model.prior), "normalize": True})
    LOG.info(f"\npredictor {info['version']} ({info['trials']} trials, {quality}) served at {url}/")
    LOG.info(f"  web page      {url}/")
    LOG.info(f"  API docs      {url}/docs")
    LOG.info(f"  bearer token  {'required: $' + token_env if token else 'none (set $' + token_env + ' to require one)'}")
    LOG.info(f"  try           curl -s{auth} -X POST {url}/v1/predict -H 'Content-Type: application/json' "
             f"-d '{example}'")
    LOG.info(f"                curl -s{auth} '{url}/v1/best?k=3'")


def _predictor_version(run_dir: str, predictor: str) -> str | None:
    import hashlib

    from climb_ray.artifacts import RunDir

    run = RunDir(run_dir)
    try:
        return hashlib.sha256(run.read_bytes(predictor)).hexdigest()[:12]
    except (FileNotFoundError, OSError):
        return None


def _check_port_free(host: str, port: int) -> None:
    import socket

    from climb_ray.config import ConfigError

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as err:
            raise ConfigError(f"serve.host={host} serve.port={port}: cannot listen there ({err.strerror}); "
                              "choose another, e.g. serve.port=8001") from None


def print_serve_hint(cfg: Config) -> None:
    """How to explore the demo's predictor: the serve command, the URL and a curl line."""
    import os

    from climb_ray.artifacts import RunDir

    run = RunDir(cfg.run_dir)
    names = run.read_json(TOKENS_META)["clusters"][:2] if run.exists(TOKENS_META) else ["sc00", "sc01"]
    host = f"[{cfg.serve.host}]" if ":" in cfg.serve.host else cfg.serve.host
    url = f"http://{host}:{cfg.serve.port}{cfg.serve.route_prefix.rstrip('/')}"
    body = json.dumps({"weights": {n: round(1 / len(names), 4) for n in names}})
    auth = f' -H "Authorization: Bearer ${cfg.serve.token_env}"' if os.environ.get(cfg.serve.token_env) else ""
    LOG.info(f"\nexplore the predictor: climb-ray serve --config demo   (or: make serve), then open {url}/ or\n"
             f"  curl -s{auth} -X POST {url}/v1/predict -H 'Content-Type: application/json' -d '{body}'")
