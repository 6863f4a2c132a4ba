"""The predictor on Ray Serve: one deployment whose FastAPI app answers the HTTP API and serves
the web page (climb_ray/web). The answers come from climb_ray.served_model; this file holds the
HTTP parts only: routes, limits, request batching and hot reloads (the Host, token and body checks
every request passes first: http_guard).

The deployment's user_config names the run folder, the predictor file and a version label: a
new predictor is put in service by redeploying with a new user_config, which Serve hands to
`reconfigure` on the running replicas (no restart; requests keep being answered by the old model
until the new one is loaded).
"""


import asyncio
import hashlib
import json
import logging
import os
from importlib import resources

from fastapi import HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ray import serve

from climb_ray import __version__, api_models
from climb_ray.api_models import OptimizeRequest, PredictRequest, body_schema, validation_message
from climb_ray.config import ServeConfig
from climb_ray.artifacts import PREDICTOR
from climb_ray.adapters.http_guard import Guard, is_loopback  # noqa: F401 (is_loopback: serve_commands')
from climb_ray.coalesce import Coalescer
from climb_ray.served_model import NotAnswerable, RequestError, ServedModel, parse_mixture

APP_NAME = "climb"
WEB = resources.files("climb_ray") / "web"
MAX_K = 100  # most mixtures /v1/best returns per list
OPTIMIZE_AT_ONCE = 2  # /v1/optimize searches running at once per replica (each holds its chunks); the rest wait
DEFAULTS = ServeConfig()
DIRECT_INGRESS_ENV = "RAY_SERVE_ENABLE_DIRECT_INGRESS"  # "1" where Serve starts: replicas also answer HTTP themselves
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}  # our routes run in the loop of the replica's own
# HTTP server: no hop between two threads' event loops per request (docs/benchmarks.md); a batch of serve.max_batch
# mixtures holds that loop ~25 ms, /v1/optimize runs in a thread
log = logging.getLogger("ray.serve")

app = FastAPIOffline(title="climb-ray predictor", version=__version__,
              description="Predicted target score of data mixtures over the super-clusters of a CLIMB run "
                          "(higher is better), the best mixtures found, the clusters, and constrained "
                          "optimisation over the predictor. Send `Authorization: Bearer <token>` when the "
                          "server has a token.")
app.mount("/static", StaticFiles(directory=str(WEB)), name="static")


async def predict_directly(scope, receive, send) -> None:
    """POST /v1/predict, the hot route, past FastAPI's routing: the same handler, its HTTPExceptions
    answered as FastAPI answers them. Routing (over every path, twice: Serve's class routes are an
    included router) and its dependency solving cost ~0.5 ms a call in the replica (docs/benchmarks.md)."""
    server = serve.get_replica_context().servable_object
    try:
        response = await server.predict(Request(scope, receive))
    except HTTPException as err:
        response = JSONResponse({"detail": err.detail}, status_code=err.status_code, headers=err.headers)
    await response(scope, receive, send)


app.add_middleware(Guard, fast={("POST", "/v1/predict"): predict_directly})


@app.exception_handler(RequestValidationError)
async def flat_validation_error(request: Request, err: RequestValidationError):
    """Query-parameter errors as one message, like every other 4xx of the API."""
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:5]]
    return JSONResponse({"detail": "; ".join(parts)}, status_code=422)


@serve.deployment(name="predictor", ray_actor_options={"num_cpus": 1}, max_ongoing_requests=256)
@serve.ingress(app)
class PredictorServer:
    def __init__(self):
        self.model: ServedModel | None = None
        self.settings: dict = {}
        self.reload_error: str | None = None
        self.singles = Coalescer()  # single-mixture calls made together: one predict
        self.optimizing = asyncio.Semaphore(OPTIMIZE_AT_ONCE)

    async def reconfigure(self, config: dict) -> None:
        """Load the predictor named by user_config; on failure keep serving the previous one (and
        the previous settings)."""
        settings = {"max_batch": DEFAULTS.max_batch, "max_body_bytes": DEFAULTS.max_body_bytes, "token_sha256": "",
                    **config}
        env_token = os.environ.get(settings.get("token_env") or DEFAULTS.token_env, "")
        if not settings["token_sha256"] and env_token:
            settings["token_sha256"] = hashlib.sha256(env_token.encode()).hexdigest()
        if not settings["token_sha256"] and self.settings.get("token_sha256") and not settings.get("drop_token"):
            settings["token_sha256"] = self.settings["token_sha256"]  # a redeploy from a shell without the token
        try:
            model = await asyncio.to_thread(ServedModel.load, settings["run_dir"], settings.get("predictor", PREDICTOR),
                                            version=str(settings.get("version") or ""))
        except Exception as err:
            if self.model is None:
                raise
            self.reload_error = (f"{type(err).__name__}: {err} (still serving {self.model.info['version']} "
                                 "with the previous settings)")
            log.error("climb-ray: new predictor not loaded: %s", self.reload_error)
            return
        self.model, self.settings, self.reload_error = model, settings, None
        # through the module: Serve pickles this class by value, and a global here would be a copy
        api_models.TOKEN["sha256"] = settings["token_sha256"]
        api_models.TOKEN["loopback"] = is_loopback(settings.get("host", ""))
        api_models.TOKEN["hosts"] = {h.lower() for h in settings.get("allowed_hosts", [])}

    def token_sha256(self) -> str:
        """The token hash this replica checks (a redeploy without the token carries it into user_config)."""
        return self.settings.get("token_sha256", "")

    # -- plumbing ---------------------------------------------------------------------------------
    async def _read(self, request: Request, model: type[BaseModel]):
        limit = int(self.settings["max_body_bytes"])
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"request body of {declared} bytes is over the limit of {limit}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HTTPException(413, f"request body is over the limit of {limit} bytes")
        try:
            return model.model_validate_json(bytes(body or b"{}"))
        except ValidationError as err:
            raise HTTPException(422, validation_message(err)) from None

    @staticmethod
    def _meta(model: ServedModel) -> dict:
        return {"version": model.info["version"], "direction": model.predictor.direction,
                "uncertainty": model.uncertainty()}

    # -- routes -----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page(self):
        return FileResponse(str(WEB / "index.html"), media_type="text/html")

    @app.get("/healthz", summary="Liveness: 200 once a predictor is loaded")
    def healthz(self):
        return {"status": "ok", "version": self.model.info["version"]}

    @app.get("/v1/model", summary="The served predictor: version, fit time, trials, held-out quality")
    def model_info(self):
        return {**self.model.info, "reload_error": self.reload_error, "max_batch": self.settings["max_batch"],
                "server": f"climb-ray {__version__}", "replica_pid": os.getpid(), "batching": self.singles.stats}

    @app.get("/v1/clusters", summary="Super-clusters: documents, tokens, top terms, examples")
    def clusters(self):
        return {"clusters": self.model.clusters}

    @app.get("/v1/best", summary="The best mixtures found: measured by proxies, and predicted")
    def best(self, k: int = Query(10, ge=1, le=MAX_K, description="mixtures per list")):
        return self.model.best(k)

    @app.post("/v1/predict", summary="Predicted score of one mixture (weights) or a batch (mixtures)",
              openapi_extra=body_schema(PredictRequest))
    async def predict(self, request: Request):
        req = await self._read(request, PredictRequest)
        model = self.model
        try:
            if (req.weights is None) == (req.mixtures is None):
                raise RequestError("send either weights (one mixture) or mixtures (a list of mixtures)")
            if req.weights is not None:
                w = parse_mixture(req.weights, model.names, normalize=req.normalize)
                body = {"predicted": await self.singles.score(model, w), "weights": model.as_dict(w), **self._meta(model)}
            else:
                if len(req.mixtures) > int(self.settings["max_batch"]):
                    raise HTTPException(413, f"mixtures has {len(req.mixtures)} entries, at most "
                                        f"{self.settings['max_batch']} per request")
                x = model.mixtures(req.mixtures, normalize=req.normalize)
                body = {"predicted": model.predict(x).tolist(), "count": len(x), **self._meta(model)}
            return Response(json.dumps(body), media_type="application/json")  # skips FastAPI's slow encoder
        except RequestError as err:
            return JSONResponse({"detail": str(err)}, status_code=400)

    @app.post("/v1/optimize", summary="The best predicted mixture under constraints (searches the predictor)",
              openapi_extra=body_schema(OptimizeRequest))
    async def optimize(self, request: Request):
        req = await self._read(request, OptimizeRequest)
        model = self.model
        try:
            async with self.optimizing:
                found = await asyncio.to_thread(model.optimize, minimum=req.min, maximum=req.max,
                                                exclude=req.exclude, token_budget=req.token_budget,
                                                max_epochs=req.max_epochs, n_candidates=req.n_candidates,
                                                seed=req.seed, weights=req.weights)
        except RequestError as err:
            return JSONResponse({"detail": str(err)}, status_code=409 if isinstance(err, NotAnswerable) else 400)
        return {**found, "version": model.info["version"]}

    @app.get("/v1/pareto", summary="Two or more targets: the mixtures on the Pareto front of their predicted "
             "scores (409 with one)")
    async def pareto(self):
        model = self.model
        try:
            async with self.optimizing:
                front = await asyncio.to_thread(model.pareto)
        except NotAnswerable as err:
            return JSONResponse({"detail": str(err)}, status_code=409)
        return {**front, "version": model.info["version"]}


def user_config(run_dir: str, *, predictor: str = PREDICTOR, version: str = "", max_batch: int = DEFAULTS.max_batch,
                max_body_bytes: int = DEFAULTS.max_body_bytes, token_env: str = DEFAULTS.token_env,
                drop_token: bool = False, allowed_hosts: list | None = None) -> dict:
    """The deployment's user_config. It holds the predictor file's SHA-256, so a redeploy after the
    file changed reconfigures the replicas even with the same arguments. The token itself never goes
    in, only its SHA-256, read from the environment variable `token_env` here (and in the replica, for
    `serve deploy` users); a redeploy without one keeps the running token unless drop_token."""
    from climb_ray.artifacts import RunDir

    token = os.environ.get(token_env, "")
    run_dir = run_dir if "://" in run_dir else os.path.abspath(run_dir)
    run = RunDir(run_dir)
    digest = hashlib.sha256(run.read_bytes(predictor)).hexdigest() if run.exists(predictor) else ""
    return {"run_dir": run_dir, "predictor": predictor, "predictor_sha256": digest, "version": version,
            "max_batch": max_batch, "max_body_bytes": max_body_bytes, "token_env": token_env,
            "allowed_hosts": list(allowed_hosts or []),
            "token_sha256": hashlib.sha256(token.encode()).hexdigest() if token else "", "drop_token": drop_token}


def code_version() -> str:
    """The deployment's version: fixed for a given code, so a redeploy that changes only user_config
    is a light update (reconfigure on the running replicas) rather than new replicas."""
    import sys

    from climb_ray import api_models, artifacts, objective, optimize, predictor, served_model, served_objective

    digest = hashlib.sha256(__version__.encode())
    for module in (sys.modules[__name__], api_models, artifacts, served_model, served_objective, predictor, optimize,
                   objective):
        with open(module.__file__, "rb") as source:
            digest.update(source.read())
    return f"{__version__}-{digest.hexdigest()[:10]}"


def application(config: dict, *, num_replicas: int = 1, num_cpus: float = 1.0, access_log: bool = DEFAULTS.access_log):
    options = {"user_config": config, "num_replicas": num_replicas,
               "ray_actor_options": {"num_cpus": num_cpus, "runtime_env": {"env_vars": dict(REPLICA_ENV)}},
               "logging_config": {"enable_access_log": access_log, "log_level": "INFO" if access_log else "WARNING"}}
    try:
        # Serve versions deployments deployed from a config file by their code; deployments from
        # serve.run get a new version each time, so any redeploy would start new replicas. Giving
        # the code's version (as Serve does for config files) makes a user_config change a light
        # update: `reconfigure` on the running replicas.
        deployment = PredictorServer.options(**options, version=code_version(), _internal=True)
    except (TypeError, ValueError):  # a Ray without that: redeploys roll new replicas (still no downtime)
        deployment = PredictorServer.options(**options)
    return deployment.bind()


class AppArgs(BaseModel):
    """The arguments of build_app: `serve run climb_ray.adapters.ray_serve:build_app run_dir=...
    max_batch=500` (strings from the command line are converted; an unknown or bad one is refused
    naming it), or `args:` in serve/config.yaml."""

    model_config = ConfigDict(extra="forbid")
    run_dir: str = Field(min_length=1)  # a finished search's run folder: absolute path or URI
    host: str = "127.0.0.1"  # the address Serve's HTTP proxy binds (http_options.host): on a loopback one, a
    # request with another Host header is refused (a DNS-rebinding page); set it to the proxy's when that differs
    predictor: str = PREDICTOR
    version: str = ""  # "" = a hash of the predictor file
    max_batch: int = Field(DEFAULTS.max_batch, ge=1)
    max_body_bytes: int = Field(DEFAULTS.max_body_bytes, ge=1)
    token_env: str = DEFAULTS.token_env
    allowed_hosts: list[str] = []  # or "a,b" on the command line
    drop_token: bool = False
    num_replicas: int = Field(1, ge=1)
    num_cpus: float = Field(1.0, ge=0)
    access_log: bool = DEFAULTS.access_log

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value):
        return [h for h in value.split(",") if h] if isinstance(value, str) else value


def build_app(args: AppArgs):
    """Application builder for `serve run` / `serve deploy` (serve/config.yaml); Serve validates
    the args into AppArgs (the annotation) before calling it."""
    if not isinstance(args, AppArgs):  # called directly with a dict
        args = AppArgs.model_validate(args)
    config = args.model_dump(exclude={"num_replicas", "num_cpus", "host", "access_log"})
    return application({**user_config(**config), "host": args.host}, num_replicas=args.num_replicas,
                       num_cpus=args.num_cpus, access_log=args.access_log)


def running_token() -> str:
    """The token hash the running app checks ("" when none runs): a redeploy from a shell without the
    token writes it into the new user_config, so a replica started later (a crash, a new node, more
    replicas) checks it too, not only the replicas that kept it in memory."""
    try:
        running = APP_NAME in serve.status().applications
    except Exception:  # no Serve on this Ray yet
        return ""
    if not running:
        return ""
    from climb_ray.config import ConfigError

    try:
        handle = serve.get_deployment_handle("predictor", app_name=APP_NAME)
        return handle.token_sha256.remote().result(timeout_s=60)
    except Exception as err:  # an older app without the method, or no healthy replica
        raise ConfigError(f"could not read the running server's token to keep it ({type(err).__name__}); set "
                          "the token's environment variable (serve.token_env), or pass --no-token to serve "
                          "without one") from None


def start(config: dict, *, host: str, port: int, num_replicas: int = 1, num_cpus: float = 1.0,
          route_prefix: str = "/", access_log: bool = DEFAULTS.access_log) -> str:
    """Deploy (or redeploy with a new user_config: a hot reload) on the connected Ray; return the URL."""
    config = {**config, "host": host}
    if not config.get("token_sha256") and not config.get("drop_token"):
        config["token_sha256"] = running_token()
    serve.start(http_options={"host": host, "port": port})
    serve.run(application(config, num_replicas=num_replicas, num_cpus=num_cpus, access_log=access_log), name=APP_NAME,
              route_prefix=route_prefix)
    url_host = f"[{host}]" if ":" in host else host
    return f"http://{url_host}:{port}{route_prefix.rstrip('/')}"


def stop() -> bool:
    """Delete our application (APP_NAME) from the connected Ray's Serve; other applications, the
    proxy and the controller keep running. False when it was not running."""
    try:
        running = APP_NAME in serve.status().applications
    except Exception:  # no Serve on this Ray
        return False
    if running:
        serve.delete(APP_NAME)
    return running


def direct_urls(host: str) -> list[str]:
    """The URLs at which our replicas answer HTTP themselves (Ray's direct ingress: no proxy hop),
    one per replica; [] when the cluster's Serve runs without it (DIRECT_INGRESS_ENV)."""
    try:  # the target groups are in Serve's instance details (the dashboard's /api/serve/applications/)
        from ray.serve.context import _get_global_client

        groups = _get_global_client().get_serve_details().get("target_groups") or []
    except Exception:  # a Ray without them
        return []
    urls = []
    for group in groups:
        if group.get("app_name") != APP_NAME or getattr(group.get("protocol"), "value", group.get("protocol")) != "HTTP":
            continue
        for target in group.get("targets", []):
            if not target.get("name", "").startswith("SERVE_REPLICA::"):
                continue  # the proxy: direct ingress is off
            name = target["ip"] if host in ("0.0.0.0", "::", "[::]") else host
            name = f"[{name.strip('[]')}]" if ":" in name else name
            urls.append(f"http://{name}:{target['port']}{group.get('route_prefix', '/').rstrip('/')}")
    return sorted(urls)
