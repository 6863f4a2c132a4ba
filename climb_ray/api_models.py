"""The request bodies of the HTTP API (pydantic), shared by the Serve app and its OpenAPI schema.
Numbers are strict (no "0.5" strings, no true/false as 1/0); unknown fields are refused."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

MAX_CANDIDATES = 200_000  # most candidates one /v1/optimize request may ask to score
TOKEN = {"sha256": "", "loopback": False, "hosts": set()}  # the bearer token's hash in this replica process (set by reconfigure, read per request)

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
    max_epochs: Weight | None = Field(None, description="passes over a cluster at most, with token_budget "
                                      "(default: the run's search.max_epochs)")
    n_candidates: Annotated[int, Strict()] = Field(20_000, ge=100, le=MAX_CANDIDATES, description="mixtures scored")
    seed: Annotated[int, Strict()] = Field(0, ge=0, le=2**63 - 1, description="seed of the candidate draws")
    weights: dict[str, Weight] | None = Field(None, description="the objective: a weight per component (target; "
                                              "/v1/model lists them, others 0); default: the run's own score",
                                              examples=[{"piqa": 1.0, "heldout": 0.5}])


def body_schema(model: type[BaseModel]) -> dict:
    """openapi_extra for a route that reads its body itself (to enforce the size limit first)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def validation_message(err: ValidationError) -> str:
    """Up to 5 problems as one line: `weights.0: Input should be a valid number; ...`."""
    parts = []
    for e in err.errors()[:5]:
        where = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("dict[", "list[")))
        parts.append(f"{where or 'body'}: {e['msg']}")
    return "; ".join(dict.fromkeys(parts))
