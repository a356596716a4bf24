"""An environment problem is not a program bug: a full disk, no permission or a read-only
output folder during a write gives ONE line naming the path, exit status 2, and leaves
nothing behind (matconv_port.atomic / errors.environment_problem / cli run_guarded).
Tests run as root, so refusals are simulated by monkeypatching the writers.
Also: a .pt holding pickled code is refused without PyTorch's weights_only=False advice."""
from __future__ import annotations

import errno
import os

import pytest
import torch
from click.testing import CliRunner

import matconv_port
from matconv_port.atomic import atomic_path, atomic_write_text
from matconv_port.cli import main
from matconv_port.cli._common import run_guarded
from matconv_port.errors import EnvironmentProblem, MatFileError
from parity_utils import FIXTURES

SRC = os.path.join(FIXTURES, "mcn_extra", "mcnextra_pool_flatten.mat")


def convert(tmp_path, *extra):
    out = str(tmp_path / "out" / "net.pt")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    result = CliRunner().invoke(main, ["convert", SRC, "-o", out, "--input-size", "5,4", *extra])
    return result, out


def assert_one_line(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert "internal error" not in lines[0] and "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_disk_full_during_convert_stream_write(tmp_path, monkeypatch):
    from matconv_port import stream_save

    assert stream_save.supported()
    calls = []

    def full(fd, data, pos):
        calls.append(pos)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    result, out = convert(tmp_path)
    assert calls, "the param writer was not reached"
    assert_one_line(result, out, "No space left on device")
    assert os.listdir(os.path.dirname(out)) == []


@pytest.mark.parametrize("message", [
    "[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file data/0: file write failed",
    "[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0",  # seen on a full tmpfs here
])
def test_disk_full_inside_torch_save(tmp_path, monkeypatch, message):
    """torch's C++ writer reports a full disk as a RuntimeError without errno."""
    from matconv_port import stream_save

    real_save = torch.save

    def failing_save(obj, f, *a, **k):
        with open(f, "wb") as fh:  # half a file, as a full disk leaves it
            fh.write(b"PK\x03\x04" + b"\0" * 100)
        raise RuntimeError(message)

    monkeypatch.setattr(stream_save, "supported", lambda: False)
    monkeypatch.setattr(torch, "save", failing_save)
    result, out = convert(tmp_path)
    monkeypatch.setattr(torch, "save", real_save)
    assert_one_line(result, f"{out}: cannot write: ")
    assert os.listdir(os.path.dirname(out)) == []


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_output_folder_refuses_the_temp_file(tmp_path, monkeypatch, code):
    import tempfile

    def refuse(*a, dir=None, **k):
        raise OSError(code, os.strerror(code), dir)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    result, out = convert(tmp_path)
    assert_one_line(result, f"{out}: cannot write: {os.strerror(code)}")
    assert os.listdir(os.path.dirname(out)) == []


def test_read_only_at_rename_names_the_target_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "report.txt"
    target.write_text("old")

    def ro(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), src, dst)

    monkeypatch.setattr(os, "replace", ro)
    with pytest.raises(EnvironmentProblem) as info:
        atomic_write_text(target, "new")
    assert str(info.value) == f"{target}: cannot write: Read-only file system"
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["report.txt"]


def test_atomic_path_turns_enospc_into_one_line_and_cleans_up(tmp_path):
    target = str(tmp_path / "ckpt.pt")
    with pytest.raises(EnvironmentProblem, match=f"^{target}: cannot write: No space left on device$"):
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)
    assert os.listdir(tmp_path) == []


def test_run_guarded_environment_vs_bug(capsys):
    def denied():
        raise PermissionError(errno.EACCES, "Permission denied", "/data/out/summary.json")

    with pytest.raises(SystemExit) as info:
        run_guarded(denied)
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: /data/out/summary.json: cannot write: Permission denied"

    def bug():
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(SystemExit) as info:
        run_guarded(bug)
    assert info.value.code == 1
    assert "internal error" in capsys.readouterr().err


# ------------------------------------------------------------------------- pickled code in a .pt
class _Marker:
    path = ""

    def __reduce__(self):
        return (open, (self.path, "w"))  # would create the marker file if it ever ran


@pytest.mark.parametrize("what", ["code", "module"])
def test_pt_with_pickled_code_is_refused_without_the_unsafe_advice(tmp_path, what):
    path = str(tmp_path / f"{what}.pt")
    marker = str(tmp_path / "RAN")
    if what == "code":
        m = _Marker()
        m.path = marker
        torch.save({"format": "matconv-port/converted", "x": m}, path)
    else:
        torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(MatFileError) as info:
        matconv_port.load_model(path)
    msg = str(info.value)
    assert "holds pickled code objects" in msg and "loads only weights" in msg and "matconv-port convert" in msg
    assert "weights_only" not in msg and "trust" not in msg
    assert not os.path.exists(marker)
    result = CliRunner().invoke(main, ["inspect", path])
    assert_one_line(result, path, "pickled code objects")
    assert not os.path.exists(marker)
