"""The predictor on Ray Serve: one deployment whose FastAPI app answers the HTTP API and serves
the web page (climb_ray/web). The answers come from climb_ray.served_model; this file holds the
HTTP parts only: routes, limits, the bearer token, request batching and hot reloads.

The deployment's user_config names the run folder, the predictor file and a version label: a
new predictor is put in service by redeploying with a new user_config, which Serve hands to
`reconfigure` on the running replicas (no restart; requests keep being answered by the old model
until the new one is loaded).
"""


import asyncio
import hashlib
import hmac
import json
import logging
import os
from importlib import resources
from typing import Annotated

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError
from ray import serve

from climb_ray import __version__
from climb_ray.served_model import PREDICTOR, RequestError, ServedModel, parse_mixture

APP_NAME = "climb"
WEB = resources.files("climb_ray") / "web"
MAX_K = 100  # most mixtures /v1/best returns per list
MAX_CANDIDATES = 200_000  # most candidates one /v1/optimize request may ask to score
BATCH_SIZE, BATCH_WAIT_S = 64, 0.002  # @serve.batch: single-mixture calls grouped into one predict
log = logging.getLogger("ray.serve")

Weight = Annotated[float, Strict()]
Mixture = dict[str, Weight] | list[Weight]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: Mixture | None = Field(None, description="one mixture: {cluster: weight} (others 0) or a list in "
                                    "cluster order", examples=[{"sc00": 0.5, "sc02": 0.5}])
    mixtures: list[Mixture] | None = Field(None, description="a batch of mixtures (at most serve.max_batch)")
    normalize: Annotated[bool, Strict()] = Field(False, description="rescale weights to sum to 1; otherwise they "
                                                 "must sum to 1 within 0.001")


class OptimizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: dict[str, Weight] | None = Field(None, description="lowest weight per cluster", examples=[{"sc01": 0.1}])
    max: dict[str, Weight] | None = Field(None, description="highest weight per cluster")
    exclude: list[str] | None = Field(None, description="clusters given weight 0")
    token_budget: Weight | None = Field(None, description="tokens of the training run: with max_epochs, caps "
                                        "each cluster at max_epochs * its tokens / token_budget")
    max_epochs: Weight | None = Field(None, description="passes over a cluster at most (default: the run's "
                                      "search.max_epochs)")
    n_candidates: Annotated[int, Strict()] = Field(20_000, description=f"mixtures scored, 100 to {MAX_CANDIDATES}")
    seed: Annotated[int, Strict()] = Field(0, ge=0, le=2**63 - 1, description="seed of the candidate draws")


def _body_schema(model: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        where = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("dict[", "list[")))
        parts.append(f"{where or 'body'}: {e['msg']}")
    return "; ".join(dict.fromkeys(parts))


app = FastAPI(title="climb-ray predictor", version=__version__,
              description="Predicted target score of data mixtures over the super-clusters of a CLIMB run "
                          "(higher is better), the best mixtures found, the clusters, and constrained "
                          "optimisation over the predictor. Send `Authorization: Bearer <token>` when the "
                          "server has a token.")
app.mount("/static", StaticFiles(directory=str(WEB)), name="static")


@serve.deployment(name="predictor", ray_actor_options={"num_cpus": 1}, max_ongoing_requests=256)
@serve.ingress(app)
class PredictorServer:
    def __init__(self):
        self.model: ServedModel | None = None
        self.settings: dict = {}
        self.reload_error: str | None = None

    async def reconfigure(self, config: dict) -> None:
        """Load the predictor named by user_config; on failure keep serving the previous one."""
        settings = {"max_batch": 10_000, "max_body_bytes": 8_000_000, "token_sha256": "", **config}
        env_token = os.environ.get(settings.get("token_env") or "CLIMB_API_TOKEN", "")
        if not settings["token_sha256"] and env_token:
            settings["token_sha256"] = hashlib.sha256(env_token.encode()).hexdigest()
        try:
            model = await asyncio.to_thread(ServedModel.load, settings["run_dir"], settings.get("predictor", PREDICTOR),
                                            version=str(settings.get("version") or ""))
        except Exception as err:
            if self.model is None:
                raise
            self.reload_error = f"{type(err).__name__}: {err}"
            log.error("climb-ray: new predictor not loaded, still serving %s: %s", self.model.info["version"], err)
            return
        self.model, self.settings, self.reload_error = model, settings, None

    # -- plumbing ---------------------------------------------------------------------------------
    def _check_token(self, request: Request) -> None:
        expected = self.settings.get("token_sha256")
        if not expected:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = hashlib.sha256(token.strip().encode()).hexdigest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
            raise HTTPException(401, "missing or wrong bearer token (send Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})

    async def _read(self, request: Request, model: type[BaseModel]):
        self._check_token(request)
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
            raise HTTPException(422, _validation_message(err)) from None

    def _meta(self) -> dict:
        return {"version": self.model.info["version"], "direction": self.model.predictor.direction,
                "uncertainty": self.model.uncertainty()}

    @serve.batch(max_batch_size=BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _predict_one(self, rows: list[np.ndarray]) -> list[float | None]:
        k = len(self.model.names)
        ok = [i for i, r in enumerate(rows) if len(r) == k]  # rows parsed against a model since replaced
        out: list[float | None] = [None] * len(rows)
        if ok:
            for i, value in zip(ok, self.model.predict(np.stack([rows[i] for i in ok]))):
                out[i] = float(value)
        return out

    # -- routes -----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page(self):
        return FileResponse(str(WEB / "index.html"), media_type="text/html")

    @app.get("/healthz", summary="Liveness: 200 once a predictor is loaded")
    def healthz(self):
        return {"status": "ok", "version": self.model.info["version"]}

    @app.get("/v1/model", summary="The served predictor: version, fit time, trials, held-out quality")
    def model_info(self, request: Request):
        self._check_token(request)
        return {**self.model.info, "reload_error": self.reload_error, "max_batch": self.settings["max_batch"],
                "server": f"climb-ray {__version__}", "replica_pid": os.getpid()}

    @app.get("/v1/clusters", summary="Super-clusters: documents, tokens, top terms, examples")
    def clusters(self, request: Request):
        self._check_token(request)
        return {"clusters": self.model.clusters}

    @app.get("/v1/best", summary="The best mixtures found: measured by proxies, and predicted")
    def best(self, request: Request, k: int = Query(10, ge=1, le=MAX_K, description="mixtures per list")):
        self._check_token(request)
        return self.model.best(k)

    @app.post("/v1/predict", summary="Predicted score of one mixture (weights) or a batch (mixtures)",
              openapi_extra=_body_schema(PredictRequest))
    async def predict(self, request: Request):
        req = await self._read(request, PredictRequest)
        model = self.model
        try:
            if (req.weights is None) == (req.mixtures is None):
                raise RequestError("send either weights (one mixture) or mixtures (a list of mixtures)")
            if req.weights is not None:
                w = parse_mixture(req.weights, model.names, normalize=req.normalize)
                score = await self._predict_one(w)
                if score is None:
                    raise HTTPException(409, "the predictor was replaced during the request; send it again")
                return {"predicted": score, "weights": model.as_dict(w), **self._meta()}
            if len(req.mixtures) > int(self.settings["max_batch"]):
                raise HTTPException(413, f"mixtures has {len(req.mixtures)} entries, at most "
                                    f"{self.settings['max_batch']} per request")
            x = model.mixtures(req.mixtures, normalize=req.normalize)
            body = {"predicted": model.predict(x).tolist(), "count": len(x), **self._meta()}
            return Response(json.dumps(body), media_type="application/json")  # skips FastAPI's slow encoder
        except RequestError as err:
            return JSONResponse({"detail": str(err)}, status_code=400)

    @app.post("/v1/optimize", summary="The best predicted mixture under constraints (searches the predictor)",
              openapi_extra=_body_schema(OptimizeRequest))
    async def optimize(self, request: Request):
        req = await self._read(request, OptimizeRequest)
        if not 100 <= req.n_candidates <= MAX_CANDIDATES:
            return JSONResponse({"detail": f"n_candidates = {req.n_candidates}: must be 100 to {MAX_CANDIDATES}"}, 400)
        try:
            found = await asyncio.to_thread(self.model.optimize, minimum=req.min, maximum=req.max, exclude=req.exclude,
                                            token_budget=req.token_budget, max_epochs=req.max_epochs,
                                            n_candidates=req.n_candidates, seed=req.seed)
        except RequestError as err:
            return JSONResponse({"detail": str(err)}, status_code=400)
        return {**found, "version": self.model.info["version"]}


def user_config(run_dir: str, *, predictor: str = PREDICTOR, version: str = "", max_batch: int = 10_000,
                max_body_bytes: int = 8_000_000, token_env: str = "CLIMB_API_TOKEN") -> dict:
    """The deployment's user_config. The token itself never goes in: only its SHA-256, read from the
    environment variable `token_env` here (and in the replica, for `serve deploy` users)."""
    token = os.environ.get(token_env, "")
    return {"run_dir": run_dir if "://" in run_dir else os.path.abspath(run_dir), "predictor": predictor,
            "version": version, "max_batch": max_batch, "max_body_bytes": max_body_bytes, "token_env": token_env,
            "token_sha256": hashlib.sha256(token.encode()).hexdigest() if token else ""}


def code_version() -> str:
    """The deployment's version: fixed for a given code, so a redeploy that changes only user_config
    is a light update (reconfigure on the running replicas) rather than new replicas."""
    import sys

    from climb_ray import optimize, predictor, served_model

    digest = hashlib.sha256(__version__.encode())
    for module in (sys.modules[__name__], served_model, predictor, optimize):
        with open(module.__file__, "rb") as source:
            digest.update(source.read())
    return f"{__version__}-{digest.hexdigest()[:10]}"


def application(config: dict, *, num_replicas: int = 1, num_cpus: float = 1.0):
    options = {"user_config": config, "num_replicas": num_replicas, "ray_actor_options": {"num_cpus": num_cpus}}
    try:
        # Serve versions deployments deployed from a config file by their code; deployments from
        # serve.run get a new version each time, so any redeploy would start new replicas. Giving
        # the code's version (as Serve does for config files) makes a user_config change a light
        # update: `reconfigure` on the running replicas.
        deployment = PredictorServer.options(**options, version=code_version(), _internal=True)
    except (TypeError, ValueError):  # a Ray without that: redeploys roll new replicas (still no downtime)
        deployment = PredictorServer.options(**options)
    return deployment.bind()


def build_app(args: dict):
    """Application builder for `serve run` / `serve deploy` (serve/config.yaml): args are the
    user_config keys (run_dir required) plus num_replicas and num_cpus."""
    args = dict(args)
    if not args.get("run_dir"):
        raise ValueError("serve needs args.run_dir: the run folder of a finished search")
    replicas, cpus = int(args.pop("num_replicas", 1)), float(args.pop("num_cpus", 1.0))
    return application(user_config(**args), num_replicas=replicas, num_cpus=cpus)


def start(config: dict, *, host: str, port: int, num_replicas: int = 1, num_cpus: float = 1.0) -> str:
    """Deploy (or redeploy with a new user_config: a hot reload) on the connected Ray; return the URL."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(application(config, num_replicas=num_replicas, num_cpus=num_cpus), name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}"
