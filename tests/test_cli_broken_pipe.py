"""A reader that closes the pipe early (`matconv-port inspect X | head -1`) ends the
command quietly, as for any Unix filter: no 'internal error', no traceback."""
import os
import subprocess
import sys

from parity_utils import FIXTURES


def test_inspect_into_a_closed_pipe_is_quiet():
    model = os.path.join(FIXTURES, "reference", "simplenn_chain_a.mat")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        proc = subprocess.run([sys.executable, "-c", "from matconv_port.cli import main; main()", "inspect", model],
                              stdout=write_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    err = proc.stderr.decode()
    assert "internal error" not in err and "Traceback" not in err, err
    assert proc.returncode == 141, (proc.returncode, err)
