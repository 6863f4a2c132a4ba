"""The Serve application as `serve run` / `serve deploy` load it: the import path of serve/config.yaml
resolved the way Serve does (ray._common.utils.import_attr, then Serve's builder call with the args),
in a fresh Python that sees only the package, not the checkout."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, make_served_run

LOAD = """
import json, sys
from ray._common.utils import import_attr
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary as build
from ray.serve.deployment import Application

try:
    import serve.app
    print("the checkout's serve/ is importable: the test is not outside the checkout")
except ImportError:
    pass
import_path = sys.argv[1]
for args in json.loads(sys.argv[2]):
    try:
        app = build(import_attr(import_path), args)
        print("built", type(app).__name__, isinstance(app, Application))
    except Exception as err:
        print("refused", type(err).__name__, str(err).replace(chr(10), " "))
"""


def test_the_config_files_import_path_builds_the_app_from_the_package_alone_and_checks_its_args(tmp_path):
    """Serve's loading of config.yaml's import path, in a Python run from tmp_path whose path holds
    only a link to the package; `serve run IMPORT_PATH key=value` hands every value over as a string."""
    run = str(make_served_run(tmp_path / "run"))
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "climb_ray").symlink_to(ROOT / "climb_ray")
    config = yaml.safe_load((ROOT / "serve" / "config.yaml").read_text())["applications"][0]
    cases = [{**config["args"], "run_dir": run},
             {"run_dir": run, "max_batch": "500", "num_replicas": "2", "allowed_hosts": "a.example,b.example"},
             {"run_dir": run, "max_batch": "0"}, {"run_dir": run, "colour": "red"}, {"max_batch": "5"}]
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r})\n"
                           + LOAD, config["import_path"], json.dumps(cases)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["built Application True"] * 2, proc.stdout
    for line, needle in zip(lines[2:], ["max_batch", "colour", "run_dir"], strict=True):
        assert line.startswith("refused ValidationError") and needle in line, line


def test_an_app_built_for_serve_run_checks_the_host_header_on_its_loopback_bind(tmp_path):
    """build_app's apps (serve run / serve deploy) know the address the proxy binds, so the replicas refuse a
    foreign Host header there (a DNS-rebinding page) as `climb-ray serve`'s do."""
    from climb_ray.adapters.ray_serve import build_app, is_loopback

    run = str(make_served_run(tmp_path / "run"))
    config = build_app({"run_dir": run})._bound_deployment.user_config
    assert config["host"] == "127.0.0.1" and is_loopback(config["host"])
    assert build_app({"run_dir": run, "host": "0.0.0.0"})._bound_deployment.user_config["host"] == "0.0.0.0"


@pytest.mark.parametrize("access_log", [False, True])
def test_replicas_run_routes_in_servers_loop_and_log_requests_only_when_asked(tmp_path, access_log):
    from climb_ray.adapters.ray_serve import REPLICA_ENV, build_app

    run = str(make_served_run(tmp_path / "run"))
    deployment = build_app({"run_dir": run, "access_log": access_log})._bound_deployment
    env = deployment.ray_actor_options["runtime_env"]["env_vars"]
    assert env == REPLICA_ENV and env["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] == "0"
    logging = deployment.logging_config
    assert logging["enable_access_log"] is access_log and logging["log_level"] == ("INFO" if access_log else "WARNING")
