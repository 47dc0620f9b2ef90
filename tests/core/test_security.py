"""What the shipped code may never do: unpickle, run a model repo's code, use a shell. Checked in the source.

(That weights load only from safetensors is checked by behaviour: see the pickle-only
folders refused in test_depth.py and test_text2image.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [
    p
    for d in ("core", "img2mesh_addon", "scripts", "bench")
    for p in sorted((REPO / d).rglob("*.py"))
]
FORBIDDEN_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("torch", "load"),
    ("pickle", "load"),
    ("pickle", "loads"),
    ("", "eval"),
    ("", "exec"),
}


def _keyword(node: ast.Call, name: str):
    return next((kw.value for kw in node.keywords if kw.arg == name), None)


def _is(value, constant) -> bool:
    return isinstance(value, ast.Constant) and value.value is constant


def scan(path: Path) -> list[str]:
    """Forbidden calls in one Python file, as 'line: what'."""
    problems = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if isinstance(func, ast.Name):
            owner = ""  # a bare call: builtins such as eval()
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = func.value.id
        else:
            owner = "?"  # a method of an expression, e.g. model(...).eval()
        if _is(_keyword(node, "shell"), True):
            problems.append(f"{node.lineno}: shell=True")
        if (owner, name) in FORBIDDEN_CALLS:
            problems.append(f"{node.lineno}: {owner + '.' if owner else ''}{name}()")
        if (
            name == "load"
            and owner in ("np", "numpy")
            and not _is(_keyword(node, "allow_pickle"), False)
        ):
            problems.append(f"{node.lineno}: np.load without allow_pickle=False")
        trust = _keyword(node, "trust_remote_code")
        if trust is not None and not _is(trust, False):
            problems.append(f"{node.lineno}: trust_remote_code not False")
        if _is(_keyword(node, "use_safetensors"), False):
            problems.append(f"{node.lineno}: use_safetensors=False")
    return problems


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(REPO)) for p in SHIPPED])
def test_shipped_code_has_no_forbidden_calls(path):
    assert scan(path) == []


def test_the_scan_flags_each_forbidden_call(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import subprocess, numpy as np, torch, os\n"
        "subprocess.run('ls', shell=True)\n"
        "np.load('x.npy')\n"
        "torch.load('w.bin')\n"
        "os.system('ls')\n"
        "M.from_pretrained('x', trust_remote_code=True, use_safetensors=False)\n"
        "np.load('ok.npy', allow_pickle=False)\n"
    )
    assert scan(bad) == [
        "2: shell=True",
        "3: np.load without allow_pickle=False",
        "4: torch.load()",
        "5: os.system()",
        "6: trust_remote_code not False",
        "6: use_safetensors=False",
    ]
