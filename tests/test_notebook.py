"""The walkthrough notebook is valid and reads only datasets the catalog defines.

Executing it needs a finished pipeline run; .ci/dvc_repro does that after `dvc repro` (ci).
"""

from __future__ import annotations

import ast

import nbformat
import pytest
from kedro.config import OmegaConfigLoader

from tests.conftest import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "walkthrough.ipynb"


def _code_cells() -> list[str]:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def catalog_loads(source: str) -> list[str]:
    """Dataset names passed as string literals to ``catalog.load(...)`` in ``source``."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "load"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "catalog"
        ):
            assert node.args and isinstance(node.args[0], ast.Constant), ast.unparse(node)
            names.append(node.args[0].value)
    return names


def test_notebook_is_valid_nbformat():
    nbformat.validate(nbformat.read(NOTEBOOK, as_version=4))


def test_notebook_loads_only_datasets_the_catalog_defines():
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
    catalog = set(loader["catalog"])
    loaded = [name for source in _code_cells() for name in catalog_loads(source)]
    assert loaded, "the walkthrough reads nothing through the catalog"
    assert set(loaded) <= catalog, f"not in the catalog: {sorted(set(loaded) - catalog)}"


def test_notebook_hard_codes_no_data_paths():
    for source in _code_cells():
        assert "data/0" not in source, "read pipeline outputs through the catalog"


def test_catalog_load_finder_sees_names_and_rejects_computed_ones():
    assert catalog_loads('x = catalog.load("metrics")\ncatalog.save("a", 1)') == ["metrics"]
    with pytest.raises(AssertionError, match=r"catalog\.load\(name\)"):
        catalog_loads("catalog.load(name)")
