"""The shape of fr_utils (issue #17): no import cycle, one home per idea, a small public API,
one batch encoder that reads each image once and says which images it skipped and why."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fr_utils
from fr_utils import errors
from fr_utils.data import cast_dir
from fr_utils.images import IMAGE_SUFFIXES

PACKAGE = Path(fr_utils.__file__).resolve().parent
OTHER = cast_dir() / "other"


def _modules() -> list[str]:
    return sorted(["fr_utils"] + [info.name for info in pkgutil.walk_packages([str(PACKAGE)], "fr_utils.")])


def _path(module: str) -> Path:
    folder = PACKAGE.joinpath(*module.split(".")[1:])
    return folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")


def _main_block(node: ast.AST) -> bool:
    """``if __name__ == "__main__":``: a script's entry, not a dependency of the module."""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name) and test.left.id == "__name__")


def _imports(module: str, known: set[str]) -> set[str]:
    """The fr_utils modules ``module`` imports anywhere (in functions too), but in its ``__main__`` block."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _main_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # "from fr_utils import align" imports a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(_path(module).read_text()))
    return {m for m in found if m in known and m not in (module, "fr_utils")}


def _graph() -> dict[str, set[str]]:
    known = set(_modules())
    return {m: _imports(m, known) for m in known}


def test_no_import_cycle_between_fr_utils_modules():
    graph = _graph()
    assert {"fr_utils.weights", "fr_utils.align"} <= graph["fr_utils.encoding"]  # the walk sees imports
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                walk(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m)


def test_the_runtime_never_imports_the_maintainers_tools():
    graph = _graph()
    for m, deps in graph.items():
        if not m.startswith("fr_utils.build"):
            assert not [d for d in deps if d.startswith("fr_utils.build")], m
    assert "fr_utils.encoding" not in graph["fr_utils.weights"]


def test_every_exception_class_lives_in_errors_under_one_base():
    defined = []
    for name in _modules():
        for node in ast.walk(ast.parse(_path(name).read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                cls = getattr(importlib.import_module(name), node.name, None)
                if isinstance(cls, type) and issubclass(cls, BaseException):
                    defined.append((name, node.name))
    assert len(defined) >= 12 and {m for m, _ in defined} == {"fr_utils.errors"}, defined
    for _, cls_name in defined:
        cls = getattr(errors, cls_name)
        assert issubclass(cls, Warning) or issubclass(cls, errors.FrUtilsError), cls_name
    # the builtin bases are kept, so existing ``except`` clauses still catch them
    builtin = {"FaceImageError": ValueError, "NoFaceError": ValueError, "DatasetError": ValueError,
               "PairsFileError": ValueError, "WeightsError": RuntimeError, "FaceDatabaseError": RuntimeError,
               "ModelMismatchError": RuntimeError, "UnknownPersonError": KeyError,
               "EmptyDatabaseError": LookupError, "FunctionTimedOut": AssertionError}
    for cls_name, base in builtin.items():
        assert issubclass(getattr(errors, cls_name), base), cls_name
    assert issubclass(errors.NoFaceError, errors.FaceImageError)
    assert issubclass(errors.ModelMismatchError, errors.FaceDatabaseError)
    assert str(errors.UnknownPersonError("Ada is not enrolled")) == "Ada is not enrolled"


def test_public_api_is_small_and_documented():
    # "at most about 15": the 15 of issue #17, sample_cast (issue #12), and the one-call API of issue #14
    # (verify, find, face_distance, compare_faces)
    assert 0 < len(fr_utils.__all__) <= 20
    doc_lines = [line.strip() for line in fr_utils.__doc__.splitlines()]
    for name in fr_utils.__all__:
        assert any(line.startswith(name) for line in doc_lines), f"{name} has no line in fr_utils' docstring"
        assert inspect.getdoc(getattr(fr_utils, name)), f"fr_utils.{name} has no docstring"
    with pytest.raises(AttributeError, match="preprocess"):
        fr_utils.preprocess  # noqa: B018  (dropped from the top level: fr_utils.encoding.preprocess)


def test_one_name_one_meaning():
    from fr_utils import evaluate, matching

    assert evaluate.METRICS is matching.METRICS
    assert not hasattr(matching, "distances")  # one to many is matching.distances_to
    m = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(matching.distances_to(m, m[0]), [0.0, np.sqrt(2)])
    np.testing.assert_allclose(evaluate.distances(m, m[::-1]), [np.sqrt(2), np.sqrt(2)])


# --------------------------------------------------------------------------- images and datasets


@pytest.mark.parametrize("suffix", sorted(IMAGE_SUFFIXES))
def test_every_image_suffix_is_read_by_load_image(tmp_path, suffix):
    from fr_utils.images import is_image_file, load_image

    pixels = np.zeros((12, 10, 3), np.uint8)
    pixels[:, :5] = 255
    path = tmp_path / f"face{suffix.upper()}"
    image = Image.fromarray(pixels)
    image = image.convert("1") if suffix == ".pbm" else image.convert("L") if suffix == ".pgm" else image
    image.save(path, format=Image.registered_extensions()[suffix])
    assert is_image_file(path)
    back = load_image(path)
    assert back.shape == (12, 10, 3) and back.dtype == np.uint8
    assert back[:, :4].mean() > 200 and back[:, 6:].mean() < 60  # the white half stays on the left


def test_dataset_path_reads_fr_datasets_in_one_place(tmp_path, monkeypatch):
    from fr_utils.datasets import dataset_path

    monkeypatch.delenv("FR_DATASETS", raising=False)
    with pytest.raises(errors.DatasetsNotFound, match="set FR_DATASETS to the folder holding lfw-protocol"):
        dataset_path("lfw-protocol")
    assert dataset_path("lfw-protocol", given=tmp_path) == tmp_path
    monkeypatch.setenv("FR_DATASETS", str(tmp_path))
    with pytest.raises(errors.DatasetsNotFound, match="orl-faces does not exist"):
        dataset_path("orl-faces")
    assert dataset_path("orl-faces", must_exist=False) == tmp_path / "orl-faces"
    (tmp_path / "orl-faces").mkdir()
    assert dataset_path("orl-faces") == tmp_path / "orl-faces"


# --------------------------------------------------------------------------- the batch encoder


@pytest.fixture
def count_reads(monkeypatch):
    """Counts the calls of ``as_rgb_array`` and ``load_image`` (each reads and checks an
    image) wherever fr_utils' encoding path calls them."""
    from fr_utils import align, detect, embedding_cache, encoding, images

    counts = {"reads": 0}

    def counting(real):
        def wrapper(image):
            counts["reads"] += 1
            return real(image)

        return wrapper

    for module in (align, detect, encoding, images):
        monkeypatch.setattr(module, "as_rgb_array", counting(images.as_rgb_array))
    monkeypatch.setattr(embedding_cache, "load_image", counting(images.load_image))
    return counts


@pytest.mark.slow
def test_each_photo_is_read_and_checked_once(facenet, cast_photos, count_reads, tmp_path):
    from fr_utils.database import FaceDatabase
    from fr_utils.embedding_cache import embed_files
    from fr_utils.encoding import encode_images, img_to_encoding

    img_to_encoding(cast_photos[0], facenet)
    assert count_reads["reads"] == 1
    count_reads["reads"] = 0
    encode_images(cast_photos[:3], facenet)
    assert count_reads["reads"] == 3
    count_reads["reads"] = 0
    with FaceDatabase(None, facenet) as db:
        assert db.enroll("cast", cast_photos[:3]) == 3
    assert count_reads["reads"] == 3
    count_reads["reads"] = 0
    embed_files(cast_photos[:3], facenet, cache_dir=tmp_path, progress=False)  # detected and embedded
    assert count_reads["reads"] == 3


@pytest.mark.slow
def test_encode_batch_raises_gives_nan_or_skips_and_says_why(facenet, cast_photos, tmp_path):
    from fr_utils.encoding import encode_batch

    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    images = [cast_photos[0], OTHER / "no_face_coffee.jpg", broken, cast_photos[1]]

    with pytest.raises(errors.NoFaceError, match="no_face_coffee.jpg"):
        encode_batch(images, facenet)

    nan = encode_batch(images, facenet, on_bad="nan", batch_size=3)
    assert nan.embeddings.shape == (4, 128) and nan.indices == [0, 1, 2, 3]
    assert np.isnan(nan.embeddings[[1, 2]]).all() and np.isfinite(nan.embeddings[[0, 3]]).all()

    skip = encode_batch(images, facenet, on_bad="skip", batch_size=3)
    assert skip.indices == [0, 3] and skip.embeddings.shape == (2, 128)
    np.testing.assert_allclose(skip.embeddings, nan.embeddings[[0, 3]], atol=1e-6)
    (i1, name1, why1), (i2, name2, why2) = skip.skipped
    assert (i1, name1) == (1, str(OTHER / "no_face_coffee.jpg")) and why1.startswith("no face found")
    assert (i2, name2) == (2, str(broken)) and "not an image" in why2

    # only faceless photos are tolerated when asked so: an unreadable file still raises
    with pytest.raises(errors.FaceImageError, match="broken.jpg"):
        encode_batch(images, facenet, on_bad="nan", bad=errors.NoFaceError)
    with pytest.raises(ValueError, match="on_bad must be one of"):
        encode_batch(images, facenet, on_bad="ignore")


def test_inference_uses_the_one_registry_of_loaded_models(facenet):
    from fr_utils import weights
    from fr_utils.encoding import inference_function
    from fr_utils.models import inception_resnet_v1

    run = inference_function(facenet)
    assert weights.loaded(facenet).inference is run and inference_function(facenet) is run
    assert weights.is_pretrained(facenet) and facenet.trainable is False
    other = inception_resnet_v1(input_size=96, embedding_size=8)
    assert weights.loaded(other) is None and not weights.is_pretrained(other)
    assert weights.loaded("not a model") is None


def test_progress_bar_shows_only_when_asked(capsys):
    from fr_utils.encoding import progress_bar

    for total, show in [(500, False), (1, True), (50, None)]:
        with progress_bar(total, show, "quiet") as bar:
            bar.update(total)
    assert "quiet" not in capsys.readouterr().err
    with progress_bar(3, True, "loud") as bar:
        bar.update(3)
    assert "loud" in capsys.readouterr().err
