"""The predictor API over real HTTP, through Ray Serve's proxy, on the synthetic run of the `served`
fixture (4 clusters; a real LightGBM predictor fitted on score = -L1(w, (0.1, 0.6, 0.2, 0.1)))."""

import hashlib
import json
import threading
import time

import numpy as np
import pytest
import requests

from tests.conftest import SERVED_NAMES, write_predictor

pytestmark = pytest.mark.ray


def redeploy(run, **settings) -> None:
    """Deploy again with a new user_config (Serve reconfigures the running replica)."""
    from climb_ray.adapters.ray_serve import start, user_config

    url_port = settings.pop("_port")
    start(user_config(str(run), **settings), host="127.0.0.1", port=url_port, num_cpus=0)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def wait_for_version(url: str, version: str, headers=None, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(f"{url}/v1/model", headers=headers, timeout=10)
        if r.status_code == 200 and r.json()["version"] == version:
            return
        time.sleep(0.2)
    raise AssertionError(f"version {version} not served after {timeout} s")


def test_health_model_clusters_and_docs_describe_the_served_run(served):
    url, _ = served
    assert requests.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
    model = requests.get(f"{url}/v1/model", timeout=10).json()
    # the default predictor cross-fits: every one of the 80 results is predicted out of fold once
    assert model["clusters"] == SERVED_NAMES and model["trials"] == 80 and model["held_out"] == 80
    assert model["members"] == 5 and "fold" in model["validation"] and model["degenerate"] is None
    assert model["spearman"] > 0.5 and model["fitted_at"].endswith("Z")
    clusters = requests.get(f"{url}/v1/clusters", timeout=10).json()["clusters"]
    assert [c["name"] for c in clusters] == SERVED_NAMES
    assert clusters[1]["top_terms"][:2] == ["thou", "unto"] and clusters[0]["tokens"] == 400_000
    assert abs(sum(c["token_share"] for c in clusters) - 1) < 1e-9
    schema = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert {"/v1/predict", "/v1/best", "/v1/clusters", "/v1/optimize", "/v1/model", "/healthz"} <= set(schema["paths"])
    docs = requests.get(f"{url}/docs", timeout=10)
    assert docs.status_code == 200 and "cdn." not in docs.text  # Swagger UI from the app itself
    assert requests.get(f"{url}/static-offline-docs/swagger-ui-bundle.js", timeout=10).status_code == 200
    page = requests.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    script = requests.get(f"{url}/static/app.js", timeout=10)
    assert script.status_code == 200 and script.headers["cache-control"] == "no-cache"


def test_predict_ranks_mixtures_like_the_objective_and_batches_agree_with_singles(served):
    url, _ = served
    near = requests.post(f"{url}/v1/predict", json={"weights": {"sc00": 0.1, "sc01": 0.6, "sc02": 0.2, "sc03": 0.1}},
                         timeout=10).json()
    far = requests.post(f"{url}/v1/predict", json={"weights": [0, 0, 0, 1]}, timeout=10).json()
    assert near["predicted"] > far["predicted"] + 0.5
    assert near["direction"] == "higher_is_better" and near["uncertainty"] > 0
    rows = np.random.default_rng(1).dirichlet(np.ones(4), 50)
    batch = requests.post(f"{url}/v1/predict", json={"mixtures": rows.tolist()}, timeout=10).json()
    singles = [requests.post(f"{url}/v1/predict", json={"weights": r.tolist()}, timeout=10).json()["predicted"]
               for r in rows[:5]]
    assert batch["count"] == 50 and np.allclose(batch["predicted"][:5], singles)
    scaled = requests.post(f"{url}/v1/predict", json={"weights": [1, 6, 2, 1], "normalize": True}, timeout=10).json()
    assert scaled["predicted"] == pytest.approx(near["predicted"]) and scaled["weights"]["sc01"] == 0.6


def test_concurrent_single_calls_are_answered_each_with_its_own_score(served):
    """The replica groups these calls into one predict (climb_ray.coalesce); each caller must still get its own row's score."""
    from concurrent.futures import ThreadPoolExecutor

    url, _ = served
    rows = np.random.default_rng(2).dirichlet(np.ones(4), 32)
    expected = requests.post(f"{url}/v1/predict", json={"mixtures": rows.tolist()}, timeout=10).json()["predicted"]
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda r: requests.post(f"{url}/v1/predict", json={"weights": r.tolist()},
                                                    timeout=30).json()["predicted"], rows))
    assert np.allclose(got, expected)
    batching = requests.get(f"{url}/v1/model", timeout=10).json()["batching"]
    assert batching["largest"] >= 2 and batching["rows"] >= 32  # some calls were scored together


@pytest.mark.parametrize("body, status, needle", [
    ('{"weights": [NaN, 0.5, 0.25, 0.25]}', 400, "weights[0] = nan"),
    ('{"weights": [1e999, 0, 0, 0]}', 400, "weights[0] = inf"),
    ('{"weights": [-0.5, 1, 0.25, 0.25]}', 400, "weights[0] = -0.5"),
    ('{"weights": [0.5, 0.5]}', 400, "has 2 weights, clusters are 4"),
    ('{"weights": {"sc09": 1.0}}', 400, "unknown cluster 'sc09'"),
    ('{"weights": [0.5, 0.2, 0.1, 0.1]}', 400, "sum to 0.9"),
    ('{"weights": [0, 0, 0, 0], "normalize": true}', 400, "all 0"),
    ('{"weights": [1e308, 1e308, 0, 0]}', 400, "sum to inf, not 1"),
    ('{"mixtures": []}', 400, "mixtures is empty"),
    ('{"mixtures": [[0.25, 0.25, 0.25, 0.25], [1, 2]]}', 400, "mixtures[1] has 2 weights"),
    ('{"weights": [0.25, 0.25, 0.25, 0.25], "mixtures": [[1, 0, 0, 0]]}', 400, "either weights"),
    ("{}", 400, "either weights"),
    ('{"weights": ["a", 0, 0, 1]}', 422, "weights"),
    ('{"weights": [true, 0, 0, 0]}', 422, "weights"),
    ('{"weights": [1, 0, 0, 0], "colour": "red"}', 422, "colour"),
    ("not json", 422, "Invalid JSON"),
    ("", 400, "either weights"),
    ("[1, 2, 3]", 422, "body"),
])
def test_bad_predict_requests_get_a_4xx_naming_the_problem(served, body, status, needle):
    url, _ = served
    r = requests.post(f"{url}/v1/predict", data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


def test_best_lists_measured_and_predicted_mixtures_best_first(served):
    url, _ = served
    best = requests.get(f"{url}/v1/best", params={"k": 5}, timeout=10).json()
    scores = [m["score"] for m in best["measured"]]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    predicted = [m["predicted"] for m in best["predicted"]]
    assert len(predicted) == 5 and predicted == sorted(predicted, reverse=True)
    assert set(best["measured"][0]["weights"]) == set(SERVED_NAMES) and best["answer"]["source"] == "best"
    for k in (0, 101, "x"):
        r = requests.get(f"{url}/v1/best", params={"k": k}, timeout=10)
        assert r.status_code == 422 and r.json()["detail"].startswith("query.k: "), r.text


def test_optimize_finds_the_objectives_optimum_and_respects_constraints(served):
    url, _ = served
    free = requests.post(f"{url}/v1/optimize", json={"seed": 0}, timeout=60).json()
    w = np.array([free["weights"][n] for n in SERVED_NAMES])
    assert np.abs(w - [0.1, 0.6, 0.2, 0.1]).sum() < 0.3 and abs(w.sum() - 1) < 1e-5
    # sc01 capped at 0.3, sc03 excluded, sc00 at least 0.2; 1M-token run, 4 passes: sc03's cap would be 0.4
    body = {"max": {"sc01": 0.3}, "exclude": ["sc03"], "min": {"sc00": 0.2}, "token_budget": 1e6, "max_epochs": 4}
    held = requests.post(f"{url}/v1/optimize", json=body, timeout=60).json()
    w = held["weights"]
    assert w["sc01"] <= 0.3 + 1e-6 and w["sc03"] == 0 and w["sc00"] >= 0.2 - 1e-6
    assert abs(sum(w.values()) - 1) < 1e-5 and "sc01" in held["at_max"] and held["predicted"] <= free["predicted"]
    assert held["bounds"]["sc02"] == [0.0, 0.8]  # the epoch cap: 4 passes * 200k tokens / 1M tokens
    epochs = requests.post(f"{url}/v1/optimize", json={"token_budget": 1e6, "max_epochs": 1}, timeout=60).json()
    assert all(epochs["weights"][n] <= cap + 1e-6 for n, cap in zip(SERVED_NAMES, [0.4, 0.3, 0.2, 0.1]))


def test_optimize_answers_for_objective_weights_and_pareto_lists_the_trade_off(served):
    """The served run records two targets, near (its score) and far (optimum SERVED_FAR)."""
    url, _ = served
    assert requests.get(f"{url}/v1/model", timeout=10).json()["components"] == ["near", "far"]
    far = requests.post(f"{url}/v1/optimize", json={"weights": {"far": 1.0}, "n_candidates": 4000}, timeout=120)
    assert far.status_code == 200, far.text
    far = far.json()
    assert far["objective"] == {"near": 0.0, "far": 1.0} and far["weights"]["sc03"] > 0.5
    assert far["predicted"] == pytest.approx(far["components"]["far"])
    front = requests.get(f"{url}/v1/pareto", timeout=120)
    assert front.status_code == 200, front.text
    points = front.json()["front"]
    near_scores = [p["predicted"]["near"] for p in points]
    far_scores = [p["predicted"]["far"] for p in points]
    assert len(points) >= 3 and near_scores == sorted(near_scores, reverse=True) and far_scores == sorted(far_scores)
    assert "/v1/pareto" in requests.get(f"{url}/openapi.json", timeout=10).json()["paths"]


@pytest.mark.parametrize("body, needle", [
    ({"min": {"sc00": 0.7, "sc01": 0.5}}, "minimums add up to 1.2"),
    ({"exclude": SERVED_NAMES}, "add up to 0"),
    ({"min": {"sc00": 0.5}, "max": {"sc00": 0.2}}, "minimum 0.5 is above its maximum 0.2"),
    ({"max": {"scXX": 0.5}}, "'scXX'"),
    ({"min": {"sc00": 1.5}}, "min[sc00] = 1.5"),
    ({"token_budget": -5}, "token_budget = -5"),
    ({"token_budget": 1e9, "max_epochs": 1}, "less than 1"),
    ({"max_epochs": 2}, "send both"),
    ({"max_epochs": -3, "token_budget": 1e6}, "max_epochs = -3"),
    ({"n_candidates": 5}, "n_candidates: Input should be greater than or equal to 100"),
    ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    ({"weights": {"piqa": 1.0}}, "unknown component 'piqa'; components are near, far"),
    ({"weights": {"far": -1.0}}, "weights['far'] = -1.0"),
    ({"weights": {"near": 0.0, "far": 0.0}}, "the weights are all 0"),
    ({"weights": {"near": "1"}}, "weights.near: Input should be a valid number"),
])
def test_impossible_constraints_get_a_4xx_naming_them(served, body, needle):
    url, _ = served
    r = requests.post(f"{url}/v1/optimize", json=body, timeout=30)
    assert r.status_code == (422 if "Input should" in needle else 400), r.text
    assert needle in r.json()["detail"]


def test_fuzzing_the_api_from_its_openapi_schema_finds_no_server_error(served):
    """Schemathesis generates valid and invalid requests for every operation from /openapi.json."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    url, _ = served
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    calls = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=25, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                response = case.call(base_url=url, timeout=30)
                calls.append(response.status_code)
                assert response.status_code < 500, f"{case.as_curl_command()} -> {response.status_code} {response.text}"
            try:
                check()
            except Unsatisfiable:  # nothing to make invalid (GET /healthz has no parameters)
                assert mode == GenerationMode.NEGATIVE
    assert len(calls) > 100 and any(400 <= c < 500 for c in calls) and any(c == 200 for c in calls)


def test_token_limits_and_sizes_are_enforced_with_4xx(served):
    url, run = served
    port = port_of(url)
    import os

    os.environ["CLIMB_TEST_TOKEN"] = "s3cret-token"
    try:
        redeploy(run, _port=port, version="guarded", max_batch=50, max_body_bytes=20_000, token_env="CLIMB_TEST_TOKEN")
        auth = {"Authorization": "Bearer s3cret-token"}
        wait_for_version(url, "guarded", headers=auth)
        one = {"weights": [0.25] * 4}
        assert requests.post(f"{url}/v1/predict", json=one, timeout=10).status_code == 401
        wrong = requests.post(f"{url}/v1/predict", json=one, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401 and "bearer token" in wrong.json()["detail"]
        assert requests.get(f"{url}/v1/clusters", timeout=10).status_code == 401
        assert requests.get(f"{url}/v1/best?k=x", timeout=10).status_code == 401  # the token before anything else
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200  # liveness stays open
        assert requests.post(f"{url}/v1/predict", json=one, headers=auth, timeout=10).status_code == 200
        many = requests.post(f"{url}/v1/predict", json={"mixtures": [[0.25] * 4] * 51}, headers=auth, timeout=10)
        assert many.status_code == 413 and "at most 50" in many.json()["detail"]
        big = json.dumps({"mixtures": [[0.25] * 4] * 40, "pad": "x" * 30_000})
        huge = requests.post(f"{url}/v1/predict", data=big, headers={**auth, "Content-Type": "application/json"},
                             timeout=10)
        assert huge.status_code == 413 and "over the limit of 20000" in huge.json()["detail"]
        chunked = requests.post(f"{url}/v1/predict", data=iter([big[:15_000].encode(), big[15_000:].encode()]),
                                headers={**auth, "Content-Type": "application/json"}, timeout=10)
        assert chunked.status_code == 413  # no Content-Length: counted while reading
        os.environ.pop("CLIMB_TEST_TOKEN", None)
        redeploy(run, _port=port, version="no-token-in-this-shell", token_env="CLIMB_TEST_TOKEN")
        wait_for_version(url, "no-token-in-this-shell", headers=auth)
        assert requests.get(f"{url}/v1/model", timeout=10).status_code == 401  # a redeploy keeps the token
    finally:
        os.environ.pop("CLIMB_TEST_TOKEN", None)
        redeploy(run, _port=port, version="restored", drop_token=True)
        wait_for_version(url, "restored")


def test_a_new_predictor_is_put_in_service_without_a_failed_request(served):
    """Reconfigure to a predictor fitted on another objective while a client keeps calling."""
    url, run = served
    write_predictor(run, (0.7, 0.1, 0.1, 0.1), seed=3, name="search/predictor_v2")
    probe = {"weights": [0.7, 0.1, 0.1, 0.1]}
    before = requests.post(f"{url}/v1/predict", json=probe, timeout=10).json()
    replica = requests.get(f"{url}/v1/model", timeout=10).json()["replica_pid"]
    seen, stop = [], threading.Event()

    def client():
        session = requests.Session()
        deadline = time.time() + 90
        while not stop.is_set() and time.time() < deadline:
            try:
                r = session.post(f"{url}/v1/predict", json=probe, timeout=30)
                seen.append((r.status_code, r.json().get("version"), r.json().get("predicted")))
            except requests.RequestException as err:
                seen.append((0, str(err), None))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(1.0)
        redeploy(run, _port=port_of(url), predictor="search/predictor_v2.txt", version="v2")
        wait_for_version(url, "v2")
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    after = requests.post(f"{url}/v1/predict", json=probe, timeout=10).json()
    try:
        assert all(status == 200 for status, _, _ in seen), [s for s in seen if s[0] != 200][:3]
        versions = [v for _, v, _ in seen]
        assert versions[0] == before["version"] and versions[-1] == "v2" and len(seen) > 10
        assert requests.get(f"{url}/v1/model", timeout=10).json()["replica_pid"] == replica  # reconfigured in place
        assert after["version"] == "v2" and after["predicted"] > before["predicted"] + 0.25  # measured: -1.06 -> -0.67
    finally:
        redeploy(run, _port=port_of(url), version="restored-2")
        wait_for_version(url, "restored-2")


def test_a_rewritten_predictor_file_is_served_after_a_redeploy_with_the_same_arguments(served):
    """What `climb-ray serve serve.watch_s=N` does when the search writes a new fit."""
    url, run = served
    path = run / "search" / "predictor.txt"
    original = {name: (run / "search" / name).read_text() for name in ("predictor.txt", "predictor.json")}
    digest = lambda: hashlib.sha256(path.read_bytes()).hexdigest()[:12]  # noqa: E731 (the default version label)
    try:
        redeploy(run, _port=port_of(url))
        wait_for_version(url, digest())
        write_predictor(run, (0.25, 0.25, 0.25, 0.25), seed=7, name="search/predictor_new")
        for name in ("predictor.json", "predictor.txt"):
            (run / "search" / name).write_text((run / "search" / name.replace("predictor", "predictor_new")).read_text())
        redeploy(run, _port=port_of(url))  # the same arguments as the deploy before
        wait_for_version(url, digest())
    finally:
        for name, text in original.items():
            (run / "search" / name).write_text(text)
        redeploy(run, _port=port_of(url), version="restored-w")
        wait_for_version(url, "restored-w")


def test_a_broken_predictor_file_is_refused_and_the_old_one_keeps_serving(served):
    url, run = served
    (run / "search" / "broken.txt").write_text("not a lightgbm model")
    (run / "search" / "broken.json").write_text("{}")
    try:
        redeploy(run, _port=port_of(url), predictor="search/broken.txt", version="broken")
        deadline = time.time() + 60
        while time.time() < deadline:
            model = requests.get(f"{url}/v1/model", timeout=10).json()
            if model["reload_error"]:
                break
            time.sleep(0.2)
        assert model["reload_error"] and model["version"] != "broken"
        assert requests.post(f"{url}/v1/predict", json={"weights": [0.25] * 4}, timeout=10).status_code == 200
    finally:
        redeploy(run, _port=port_of(url), version="restored-3")
        wait_for_version(url, "restored-3")


def test_serve_config_yaml_passes_serves_schema_and_its_import_path_builds_a_working_app(served):
    """serve/config.yaml is what `serve deploy` reads: Ray's own schema check, then the builder it
    names (the installed package's, tests/unit/test_serve_app.py) deployed as a second application."""
    from pathlib import Path

    import yaml
    from ray import serve
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.schema import ServeDeploySchema

    url, run = served
    root = Path(__file__).resolve().parents[2]
    config = ServeDeploySchema.model_validate(yaml.safe_load((root / "serve" / "config.yaml").read_text()))
    app_cfg = config.applications[0]
    assert config.http_options.host == "127.0.0.1" and app_cfg.import_path.startswith("climb_ray.")
    app = call_user_app_builder_with_args_if_necessary(import_attr(app_cfg.import_path),
                                                       {**app_cfg.args, "run_dir": str(run), "version": "from-yaml",
                                                        "num_cpus": 0})
    serve.run(app, name="yaml", route_prefix="/yaml")
    try:
        assert requests.get(f"{url}/yaml/v1/model", timeout=10).json()["version"] == "from-yaml"
    finally:
        serve.delete("yaml")


def test_serve_stop_deletes_our_application_and_leaves_another_one_serving(served, monkeypatch, capsys):
    """`climb-ray serve --stop` (`serve shutdown` would remove every application on the cluster)."""
    from ray import serve

    from climb_ray.serve_commands import stop_serving

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    def other(request):
        return "other app"

    url, run = served
    serve.run(other.bind(), name="other", route_prefix="/other")
    monkeypatch.setenv("RAY_ADDRESS", "auto")  # joined to a cluster: here the session's Ray, already connected
    try:
        assert stop_serving() == 0 and "deleted the Serve application 'climb'" in capsys.readouterr().out
        assert requests.get(f"{url}/other", timeout=10).text == "other app"
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 404
        assert stop_serving() == 0 and "nothing to stop" in capsys.readouterr().out
    finally:
        serve.delete("other")
        redeploy(run, _port=port_of(url), version="restarted")
        wait_for_version(url, "restarted")


def test_under_a_route_prefix_every_path_but_the_public_ones_needs_the_token(served):
    """The token check runs on the route path (Serve's route_prefix stripped), and denies by default."""
    import hashlib

    from ray import serve

    from climb_ray.adapters.ray_serve import application, user_config

    url, run = served
    config = {**user_config(str(run), version="prefixed"), "token_sha256": hashlib.sha256(b"pfx-token").hexdigest()}
    serve.run(application(config, num_cpus=0), name="prefixed", route_prefix="/climb")
    auth = {"Authorization": "Bearer pfx-token"}
    try:
        assert requests.get(f"{url}/climb/v1/model", headers=auth, timeout=10).json()["version"] == "prefixed"
        assert requests.get(f"{url}/climb/v1/model", timeout=10).status_code == 401
        assert requests.post(f"{url}/climb/v1/predict", json={"weights": [0.25] * 4}, timeout=10).status_code == 401
        assert requests.get(f"{url}/climb/v1/nothing-here", timeout=10).status_code == 401  # deny by default
        assert requests.get(f"{url}/climb/v1/nothing-here", headers=auth, timeout=10).status_code == 404
        for public in ("/healthz", "/", "/docs", "/openapi.json", "/static/app.js"):
            assert requests.get(f"{url}/climb{public}", timeout=10).status_code == 200, public
        page = requests.get(f"{url}/climb", timeout=10)  # redirected to /climb/: the page's relative links
        assert page.status_code == 200 and page.url == f"{url}/climb/" and 'src="static/app.js"' in page.text
    finally:
        serve.delete("prefixed")


def test_a_foreign_host_header_and_a_non_json_body_are_refused(served):
    url, _ = served
    port = port_of(url)
    rebound = requests.get(f"{url}/v1/model", headers={"Host": f"attacker.example:{port}"}, timeout=10)
    assert rebound.status_code == 421 and "attacker.example" in rebound.json()["detail"]
    for name in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert requests.get(f"{url}/healthz", headers={"Host": name}, timeout=10).status_code == 200
    form = requests.post(f"{url}/v1/predict", data="weights=1", timeout=10)  # a form post from another page
    assert form.status_code == 415 and "application/json" in form.json()["detail"]
    plain = requests.post(f"{url}/v1/predict", data='{"weights": [0.25, 0.25, 0.25, 0.25]}',
                          headers={"Content-Type": "text/plain"}, timeout=10)
    assert plain.status_code == 415
    _, run = served
    try:  # a reverse proxy on this machine that forwards its own Host name: allowed when listed
        redeploy(run, _port=port, version="proxied", allowed_hosts=["Proxy.Internal"])
        wait_for_version(url, "proxied")
        assert requests.get(f"{url}/healthz", headers={"Host": "proxy.internal"}, timeout=10).status_code == 200
        assert requests.get(f"{url}/healthz", headers={"Host": "other.example"}, timeout=10).status_code == 421
    finally:
        redeploy(run, _port=port, version="restored-5")
        wait_for_version(url, "restored-5")


def test_a_replacement_replica_still_checks_the_token_kept_by_a_redeploy_without_it(served):
    """Redeploy from a shell without the token, then kill the replica: Serve starts a new one from the
    deployed user_config, which must carry the token's hash."""
    import os

    import ray

    url, run = served
    port, auth = port_of(url), {"Authorization": "Bearer kept-token"}
    os.environ["CLIMB_TEST_TOKEN"] = "kept-token"
    try:
        redeploy(run, _port=port, version="with-token", token_env="CLIMB_TEST_TOKEN")
        wait_for_version(url, "with-token", headers=auth)
        os.environ.pop("CLIMB_TEST_TOKEN")
        redeploy(run, _port=port, version="kept", token_env="CLIMB_TEST_TOKEN")
        wait_for_version(url, "kept", headers=auth)
        old_pid = requests.get(f"{url}/v1/model", headers=auth, timeout=10).json()["replica_pid"]
        (replica,) = [a for a in ray.util.list_named_actors(all_namespaces=True)
                      if a["name"].startswith("SERVE_REPLICA::climb#predictor")]
        ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                r = requests.get(f"{url}/v1/model", headers=auth, timeout=10)
                if r.status_code == 200 and r.json()["replica_pid"] != old_pid:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("no replacement replica within 120 s")
        assert requests.get(f"{url}/v1/model", timeout=10).status_code == 401
    finally:
        os.environ.pop("CLIMB_TEST_TOKEN", None)
        redeploy(run, _port=port, version="restored-4", drop_token=True)
        wait_for_version(url, "restored-4")
