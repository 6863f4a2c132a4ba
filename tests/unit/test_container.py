"""docker/Dockerfile installs what the Makefile installs (torch's pin first, then the project), on the
Ray version the project pins and cluster.yaml runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pip_installs(text: str) -> list[str]:
    """The arguments of each `pip install` in order, options and quotes dropped."""
    out = []
    for match in re.finditer(r"pip install ([^\n&]+)", text):
        args = [a.strip("'\"") for a in match.group(1).split() if not a.startswith("-") and a != "\\"]
        out.append(" ".join(args))
    return out


def test_the_dockerfile_installs_torch_first_with_the_makefiles_pin_then_the_project():
    make = [a for a in _pip_installs((ROOT / "Makefile").read_text()) if a != "pip"]
    docker = _pip_installs((ROOT / "docker" / "Dockerfile").read_text())
    assert make[0] == docker[0] and re.fullmatch(r"torch==[\d.]+", make[0]), (make, docker)
    assert make[1].startswith(".[") and docker[1].startswith("/home/ray/climb_ray["), (make, docker)
    assert len(docker) == 2


def test_the_image_is_on_the_ray_version_the_project_pins_and_cluster_yaml_runs():
    ray_pin = re.search(r'"ray\[[^\]]+\]==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    base = re.search(r"ARG BASE=rayproject/ray:([\d.]+)-py(\d+)-gpu", (ROOT / "docker" / "Dockerfile").read_text())
    assert base and base.group(1) == ray_pin
    cluster_images = set(re.findall(r"rayproject/ray:([\d.]+)-py(\d+)", (ROOT / "cluster.yaml").read_text()))
    assert cluster_images == {(ray_pin, base.group(2))}


def test_the_dockerfile_extras_exist_in_the_project():
    extras = re.search(r"ARG EXTRAS=([\w,]+)", (ROOT / "docker" / "Dockerfile").read_text()).group(1).split(",")
    pyproject = (ROOT / "pyproject.toml").read_text()
    for extra in extras:
        assert re.search(rf"^{extra} = \[", pyproject, re.M), extra


def test_the_image_leaves_out_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "runs", "data"} <= set(ignored)
