"""The ungraded "beyond" notebook: clean source, and a headless run top to bottom
without LFW (nothing uploaded: the enrolment cell must run its demo, not fail)."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from nbgrader_helpers import REPO, error_outputs, nbgrader_meta, read_notebook

SOURCE = REPO / "notebooks" / "beyond" / "beyond.ipynb"


@pytest.fixture(scope="module")
def source():
    return read_notebook(SOURCE)


def test_source_is_valid_clean_and_ungraded(source):
    nbformat.validate(source)
    assert source.metadata.kernelspec.name == "python3"
    for cell in source.cells:
        assert not nbgrader_meta(cell).get("grade")
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the outputs"


def _printed(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")


@pytest.mark.slow
def test_runs_headless_without_lfw(source, tmp_path, monkeypatch):
    monkeypatch.delenv("FR_DATASETS", raising=False)
    client = NotebookClient(source, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    assert [error_outputs(cell) for cell in source.cells if error_outputs(cell)] == []
    printed = "\n".join(_printed(cell) for cell in source.cells)
    assert "24 images, the cast and three variants of each photo" in printed
    assert "4 clusters for 4 people; adjusted Rand index against the true names: 1.000" in printed
    assert "No photo taken or chosen: demo with Barack_Obama_0001.jpg enrolled as 'you'." in printed
    assert "you (Barack_Obama_0003.jpg)" in printed and "the door opens" in printed
    figures = [out for cell in source.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert len(figures) == 3  # the cluster gallery, the PCA map, the t-SNE map
