"""notebooks/quickstart.ipynb, executed headless against a fresh kernel, outputs checked."""
import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

pytestmark = pytest.mark.render  # the notebook renders


def test_the_quickstart_notebook_runs_and_shows_the_sheet_a_frame_the_video_and_the_tasks(tmp_path):
    notebook = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    kinds = [set(o.get("data", {})) for o in outputs]
    assert sum("image/png" in k for k in kinds) == 2  # the detection sheet and the frame
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("<video" in h and "base64" in h for h in html)
    assert any("<svg" in h and "<rect" in h for h in html)
    assert list((tmp_path / "outputs" / "quickstart").glob("*/quickstart.mp4"))
