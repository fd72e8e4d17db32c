"""The stop's bounds (fedsweep/interrupt.py), in a small process of their own: the running round gets
`timeout_s`; once it has committed, the wrap-up gets a fresh bound of its own, and is not cut short."""

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A sweep stand-in: its "round" ends 0.5 s after the signal, then its wrap-up takes `wrap_s`.
SCRIPT = textwrap.dedent("""
    import sys, time
    from fedsweep import interrupt

    def sweep():
        print("running", flush=True)
        while not interrupt.stop_requested():
            time.sleep(0.05)
        time.sleep(0.5)
        if sys.argv[2] == "wrap":
            interrupt.wrapping_up()
        time.sleep(float(sys.argv[1]))
        return "summary written"

    print(interrupt.run_interruptible(sweep, timeout_s=1.0,
                                      on_hard_stop=[lambda: print("hard stop", flush=True)]),
          flush=True)
    interrupt.finish(interrupt.exit_status())
""")


def stopped(wrap_s: float, mode: str) -> tuple[int, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(wrap_s), mode],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


@pytest.mark.parametrize("mode", ["wrap", "no-wrap"])
def test_the_wrap_up_after_a_committed_round_gets_its_own_bound(mode) -> None:
    # Execute: a wrap-up of 3 s, longer than the round's bound of 1 s
    started = time.monotonic()
    code, out = stopped(3.0, mode)
    # Assert: after `wrapping_up()` the summary is written; without it, the hard stop at the bound
    assert code == 130, out
    if mode == "wrap":
        assert "summary written" in out and "hard stop" not in out, out
        assert time.monotonic() - started >= 3.5
    else:
        assert "the running round did not end within 1 s: stopping now" in out and "hard stop" in out, out
        assert "summary written" not in out
