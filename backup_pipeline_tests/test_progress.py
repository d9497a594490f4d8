"""The terminal line spans the whole operation, though each step counts with its own Progress."""

import io
import time

from backup_pipeline.progress import Progress, TerminalDisplay


def test_terminal_line_shows_the_whole_operations_elapsed_time():
    out = io.StringIO()
    display = TerminalDisplay(out)
    display.started = time.monotonic() - 75  # the operation began 75 s ago
    step = Progress(listeners=[display])
    step.set_phase("dumping database")
    assert out.getvalue().endswith("dumping database: 0 B, 0 documents, 0.0 MB/s, 75s elapsed")
    assert step.describe().endswith("0s elapsed")  # the step's own time, as ops log it


def test_each_phase_counts_its_own_bytes():
    step = Progress()
    step.set_phase("checking the archive's sha256")
    step.add_bytes(5_000_000)
    step.set_phase("verifying archive")
    step.add_bytes(2_000_000)
    assert step.describe().startswith("verifying archive: 2.0 MB,")
    step.set_phase("verifying archive")  # the same phase again goes on counting
    assert step.bytes == 2_000_000
