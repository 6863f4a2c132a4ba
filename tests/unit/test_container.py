"""docker/Dockerfile installs as the Makefile does (the same torch pin first, then the project; with the
extras a node needs instead of the demo and test ones), on the Ray version the project pins, and the
cluster configs run its images."""

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


def test_the_image_is_on_the_ray_version_the_project_pins_and_tagged_with_its_version():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ray_pin = next(d for d in project["dependencies"] if d.startswith("ray[")).split("==")[1]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    base = re.search(r"ARG BASE=rayproject/ray:([\d.]+)-py(\d+)-gpu", dockerfile)
    assert base and base.group(1) == ray_pin
    assert f"--build-arg BASE=rayproject/ray:{ray_pin}-py{base.group(2)} " in dockerfile  # the CPU variant
    for where in ("cluster.yaml", "jobs/k8s/rayjob.yaml"):  # the images they run carry the project's version
        tags = set(re.findall(r"YOUR-REGISTRY/climb-ray:([\w.-]+)", (ROOT / where).read_text()))
        assert tags == {project["version"], f"{project['version']}-gpu"}, (where, tags)


def test_the_dockerfile_extras_exist_in_the_project():
    extras = re.search(r"ARG EXTRAS=([\w,]+)", (ROOT / "docker" / "Dockerfile").read_text()).group(1).split(",")
    pyproject = (ROOT / "pyproject.toml").read_text()
    for extra in extras:
        assert re.search(rf"^{extra} = \[", pyproject, re.M), extra


def test_the_image_leaves_out_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "runs", "data"} <= set(ignored)
