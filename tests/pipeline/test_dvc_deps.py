"""dvc.yaml's code deps cannot drift: every project module a stage script imports (transitively, lazy imports
included) is a dep of that stage, so `dvc status` (and retraining, which asks DVC) sees every code change."""

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("aster", "pipeline")


def module_file(name: str) -> Path | None:
    """The file of a project module `a.b.c` (module or package), or None when it is not ours."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Dotted names imported anywhere in `path` (functions included), with `from a import b` tried as a.b too."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def closure(entry: str) -> set[Path]:
    """Every project file importing `entry` executes: its imports, transitively, and their packages' __init__."""
    seen, todo = set(), [entry]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ as well
            f = module_file(".".join(parts[:i]))
            if f is not None and f not in seen:
                seen.add(f)
                todo.extend(imported_modules(f))
    return seen


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


def stage_modules() -> dict[str, tuple[str, list[str]]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        cmd = body["cmd"].split()
        assert cmd[:2] == ["python", "-m"], f"stage {name}: cmd {body['cmd']!r} is not `python -m <module>`"
        out[name] = (cmd[2], [d for d in body.get("deps", []) if "${" not in d])
    return out


def test_every_imported_module_is_a_dep():
    missing = {}
    for stage, (module, deps) in stage_modules().items():
        files = closure(module)
        assert module_file(module) in files, f"stage {stage}: {module} is not a project module"
        gaps = sorted(f.relative_to(ROOT).as_posix() for f in files if not covered(f, deps))
        if gaps:
            missing[stage] = gaps
    assert not missing, f"dvc.yaml misses deps that the stage scripts import: {missing}"


def test_the_import_graph_sees_lazy_imports(tmp_path):
    # pipeline/train.py imports the model only inside a function: it must still be found
    files = {f.relative_to(ROOT).as_posix() for f in closure("pipeline.train")}
    assert {"pipeline/train.py", "pipeline/common.py", "aster/model.py", "aster/training.py",
            "aster/__init__.py"} <= files
    assert "serving/service.py" not in files
