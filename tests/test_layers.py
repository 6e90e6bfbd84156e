"""The library layer stays a library: aster/ imports neither the pipeline, the service nor the tools around them
(docs/architecture.md), and the inference path does not import torch at module level."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"pipeline", "serving", "benchmarks", "dvc", "dvclive", "prefect", "bentoml"}


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_library_does_not_import_the_layers_above():
    bad = {str(p.relative_to(ROOT)): sorted(imports(p) & FORBIDDEN) for p in (ROOT / "aster").rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_inference_path_is_torch_free_at_import():
    for name in ("inference.py", "scoring.py", "windows.py"):
        assert "torch" not in imports(ROOT / "aster" / name, top_level_only=True), name
