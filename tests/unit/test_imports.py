import ast
import subprocess
import sys

from tests.conftest import ROOT

PACKAGE = ROOT / "climb_ray"


def imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_no_module_outside_adapters_imports_ray():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "adapters" in path.relative_to(PACKAGE).parts:
            continue
        for name in imported_modules(path):
            if name == "ray" or name.startswith("ray."):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_the_check_above_would_catch_a_ray_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ray import data\n    import ray.tune\n")
    assert list(imported_modules(bad)) == ["ray", "ray.tune"]


def test_importing_the_package_and_cli_stays_light():
    code = ("import sys, climb_ray, climb_ray.cli, climb_ray.config_io, climb_ray.corpus, "
            "climb_ray.artifacts, climb_ray.stages.pipeline; "
            "print(sorted(m for m in ('ray', 'torch', 'transformers', 'lightgbm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_the_core_imports_neither_the_stages_nor_the_adapters():
    """Four bands: entry (cli, commands, serve_commands), stages/, adapters/, and the flat core below them all."""
    entry = {"cli.py", "commands.py", "serve_commands.py", "__init__.py", "__main__.py"}
    offenders = []
    for path in sorted([*PACKAGE.glob("*.py"), *PACKAGE.glob("baselines/*.py")]):
        if path.name in entry:
            continue
        for name in imported_modules(path):
            if name.startswith(("climb_ray.stages", "climb_ray.adapters")):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_the_adapters_do_not_import_the_stages():
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for path in sorted((PACKAGE / "adapters").glob("*.py"))
                 for name in imported_modules(path) if name.startswith("climb_ray.stages")]
    assert offenders == []
