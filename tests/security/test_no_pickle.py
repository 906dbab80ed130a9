"""No untrusted pickle is ever loaded.

An AST scan of every Python file Heron ships (app/, services/, widgets/, main.py) for the ways to
deserialize code-carrying data. The only one allowed is ``pickle.loads`` in
services/shadow/registry.py, inside the function that first compares the bytes' SHA-256 with the
registry's record; the registry's own tamper test must exist too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.security.support import REPO

SHIPPED = [REPO / "app", REPO / "services", REPO / "widgets", REPO / "main.py"]
REGISTRY = REPO / "services" / "shadow" / "registry.py"

# Modules whose loaders run code from the data.
UNSAFE_MODULES = {
    "pickle",
    "_pickle",
    "cPickle",
    "cloudpickle",
    "dill",
    "joblib",
    "shelve",
    "marshal",
    "torch",
}
# (module alias, function) loaders, plus method names that load pickles whatever the receiver.
UNSAFE_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("_pickle", "loads"),
    ("joblib", "load"), ("torch", "load"), ("shelve", "open"), ("marshal", "load"), ("marshal", "loads"),
    ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"),
    ("yaml", "unsafe_load"), ("yaml", "full_load"),
}  # fmt: skip
UNSAFE_METHODS = {"read_pickle", "unsafe_load"}


def _files() -> list[Path]:
    out: list[Path] = []
    for root in SHIPPED:
        out.extend([root] if root.is_file() else sorted(root.rglob("*.py")))
    return out


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name → module, for ``import x``, ``import x as y`` and ``from x import f`` (as ``x.f``)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def findings(path: Path) -> list[tuple[int, str, ast.Call | None]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    aliases = _aliases(tree)
    found: list[tuple[int, str, ast.Call | None]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = None
        if isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name):
                module = aliases.get(func.value.id, func.value.id).split(".")[0]
                if (module, func.attr) in UNSAFE_CALLS:
                    name = f"{module}.{func.attr}"
                if module == "numpy" and func.attr == "load" and _allows_pickle(node):
                    name = "numpy.load(allow_pickle=True)"
            if func.attr in UNSAFE_METHODS:
                name = name or f".{func.attr}"
        elif isinstance(func, ast.Name) and func.id in aliases:
            module, _, attr = aliases[func.id].rpartition(".")
            if (module.split(".")[0], attr) in UNSAFE_CALLS:
                name = f"{module}.{attr}"
            if module.split(".")[0] == "numpy" and attr == "load" and _allows_pickle(node):
                name = "numpy.load(allow_pickle=True)"
        if name:
            found.append((node.lineno, name, node))
    return found


def _allows_pickle(call: ast.Call) -> bool:
    return any(
        k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
        for k in call.keywords
    )


def test_the_scanner_finds_every_kind_of_loader(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import pickle, joblib, numpy as np, pandas as pd\nfrom pickle import loads as L\nimport torch\n"
        "pickle.load(f)\npickle.loads(b)\nL(b)\njoblib.load(p)\npd.read_pickle(p)\ndf.read_pickle(p)\n"
        "np.load(p, allow_pickle=True)\nnp.load(p)\nnp.load(p, allow_pickle=False)\ntorch.load(p)\n"
    )
    names = [name for _, name, _ in findings(sample)]
    assert names == [
        "pickle.load", "pickle.loads", "pickle.loads", "joblib.load", ".read_pickle", ".read_pickle",
        "numpy.load(allow_pickle=True)", "torch.load",
    ]  # fmt: skip


def test_no_shipped_code_deserializes_pickles_except_the_verified_registry() -> None:
    offenders = []
    allowed = []
    for path in _files():
        for line, name, _ in findings(path):
            where = f"{path.relative_to(REPO)}:{line}: {name}"
            if path == REGISTRY and name == "pickle.loads":
                allowed.append(where)
            else:
                offenders.append(where)
    assert offenders == []
    assert len(allowed) == 1, allowed  # exactly the verified load


def test_the_registry_unpickles_only_after_the_hash_check() -> None:
    tree = ast.parse(REGISTRY.read_text(encoding="utf-8"))
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        calls = [
            n for n in ast.walk(func)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "loads"
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "pickle"
        ]  # fmt: skip
        if not calls:
            continue
        load_line = calls[0].lineno
        hashed = [n.lineno for n in ast.walk(func) if isinstance(n, ast.Attribute) and n.attr == "sha256"]
        refusals = [
            n.lineno for n in ast.walk(func)
            if isinstance(n, ast.Raise) and n.exc is not None and "Tampered" in ast.unparse(n.exc)
        ]  # fmt: skip
        assert hashed and min(hashed) < load_line, "the bytes must be hashed before pickle.loads"
        assert refusals and max(refusals) < load_line, "a mismatch must raise before pickle.loads"
        return
    raise AssertionError("registry has no pickle.loads: update this test")


def test_the_registry_tamper_test_exists() -> None:
    text = (REPO / "tests" / "unit" / "shadow" / "test_registry.py").read_text(encoding="utf-8")
    assert "def test_tampered_file_is_refused_and_never_unpickled" in text
    assert "TamperedModelError" in text


def test_a_tampered_model_with_a_payload_is_refused_without_running_it(tmp_path: Path) -> None:
    import pickle

    from services.shadow.registry import ModelRegistry, TamperedModelError

    registry = ModelRegistry(tmp_path / "models")
    record = registry.save("probe", _Probe(), feature_names=("a",))
    marker = tmp_path / "payload-ran"
    payload = pickle.dumps(_Payload(str(marker)))
    (tmp_path / "models" / "probe" / f"{record.version}.pkl").write_bytes(payload)
    try:
        registry.load("probe")
    except TamperedModelError:
        pass
    else:
        raise AssertionError("a replaced model file was loaded")
    assert not marker.exists()


class _Probe:
    def predict_proba(self, x: object) -> object:
        return x


class _Payload:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))
