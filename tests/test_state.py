"""StateStore: round trip, WindowBuffer state, corrupt/incompatible files, atomic writes."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from exporter.state import FORMAT_VERSION, StateError, StateStore
from exporter.windows import Window, WindowBuffer


def test_round_trip_any_flat_dict(tmp_path):
    store = StateStore(tmp_path / "state")
    arrays = {
        "buffer.values": np.arange(24, dtype=np.float64).reshape(2, 3, 4),
        "buffer.entities": np.array(["a\xffb", "c\xffd"], dtype=object),
        "topology.baseline": np.array([np.nan, 1.5]),
        "topology.names": np.array([b"x", b"y"]),
        "empty": np.array([], dtype=object),
    }
    store.save("nodes", arrays)
    got = store.load("nodes")
    assert set(got) == set(arrays)
    np.testing.assert_array_equal(got["buffer.values"], arrays["buffer.values"])
    assert got["buffer.entities"].dtype.kind == "U"
    assert got["buffer.entities"].tolist() == ["a\xffb", "c\xffd"]
    assert got["topology.names"].tolist() == ["x", "y"]
    np.testing.assert_array_equal(got["topology.baseline"], [np.nan, 1.5])
    assert got["empty"].shape == (0,)
    assert sorted(os.listdir(tmp_path / "state")) == ["nodes.npz"]


def test_window_buffer_survives_a_restart(tmp_path):
    buf = WindowBuffer("nodes", ("instance",), ("cpu", "mem"), 60.0, 10)
    ts = 600.0 + 60 * np.arange(10)
    values = np.random.default_rng(1).random((3, 2, 10))
    buf.update(Window("nodes", ("instance",), (("a",), ("b",), ("c",)), ("cpu", "mem"), ts,
                      values))
    store = StateStore(tmp_path)
    store.save("nodes", {f"buffer.{k}": v for k, v in buf.state().items()})
    loaded = store.load("nodes")
    fresh = WindowBuffer("nodes", ("instance",), ("cpu", "mem"), 60.0, 10)
    fresh.restore({k.removeprefix("buffer."): v for k, v in loaded.items()})
    assert fresh.entities == buf.entities and fresh.end == buf.end
    np.testing.assert_array_equal(fresh.window().values, values)


def test_missing_file_is_none_and_said_at_info_a_first_start_is_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="exporter.state"):
        assert StateStore(tmp_path).load("nodes") is None
    assert [r.levelno for r in caplog.records if "starting fresh" in r.getMessage()] \
        == [logging.INFO]


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04garbage"])
def test_corrupt_file_is_none_with_warning(tmp_path, caplog, content):
    (tmp_path / "nodes.npz").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="exporter.state"):
        assert StateStore(tmp_path).load("nodes") is None
    assert "unreadable" in caplog.text


def test_truncated_file_is_none(tmp_path, caplog):
    store = StateStore(tmp_path)
    store.save("nodes", {"v": np.arange(10_000.0)})
    path = tmp_path / "nodes.npz"
    path.write_bytes(path.read_bytes()[:-200])
    with caplog.at_level(logging.WARNING, logger="exporter.state"):
        assert store.load("nodes") is None


def test_pickled_or_foreign_files_are_refused(tmp_path, caplog):
    # An object array is only loadable with pickle: it must be refused, not executed.
    np.savez(tmp_path / "a.npz", x=np.array([{"k": 1}], dtype=object))
    np.savez(tmp_path / "b.npz", x=np.arange(3))  # no format version
    np.savez(tmp_path / "c.npz", x=np.arange(3),
             __aura_state_format__=np.array([FORMAT_VERSION + 1]))
    store = StateStore(tmp_path)
    with caplog.at_level(logging.WARNING, logger="exporter.state"):
        assert store.load("a") is None
        assert store.load("b") is None
        assert store.load("c") is None
    assert caplog.text.count("another format") == 2


def test_save_is_atomic_on_failure(tmp_path):
    store = StateStore(tmp_path)
    store.save("nodes", {"v": np.arange(3.0)})
    with pytest.raises(StateError, match="object arrays"):
        store.save("nodes", {"v": np.arange(3.0), "bad": np.array([object()], dtype=object)})
    # The failed save left the previous state intact and no temporary file behind.
    assert sorted(os.listdir(tmp_path)) == ["nodes.npz"]
    np.testing.assert_array_equal(store.load("nodes")["v"], np.arange(3.0))


def test_failed_rename_leaves_no_partial_file(tmp_path):
    store = StateStore(tmp_path)
    # The rename over the target fails for real (a directory is in the way), after the
    # temporary file was written and synced: nothing partial may stay behind.
    (tmp_path / "nodes.npz").mkdir()
    (tmp_path / "nodes.npz" / "keep").write_text("x")
    with pytest.raises(StateError, match="cannot write state"):
        store.save("nodes", {"v": np.arange(5.0)})
    assert sorted(os.listdir(tmp_path)) == ["nodes.npz"]
    assert os.listdir(tmp_path / "nodes.npz") == ["keep"]


def test_unsafe_names_refused(tmp_path):
    store = StateStore(tmp_path)
    with pytest.raises(StateError):
        store.save("../escape", {"v": np.arange(2)})
    assert store.load("../escape") is None
