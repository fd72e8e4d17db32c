"""benchmarks/: the bare loop runs and reports; memory_curve's verdict maths and MLflow reading."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import psutil
import pytest
import torch
from sweep_cli import sweep_env

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load_script(name: str) -> ModuleType:
    """Import a benchmarks/ script by path (benchmarks/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


memory_curve = load_script("memory_curve")


def test_bare_loop_smoke(tmp_path: Path) -> None:
    # Execute
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bare_loop.py"),
            "--rounds",
            "2",
            "--clients",
            "4",
            "--clients-per-round",
            "2",
            "--samples-per-client",
            "20",
            "--test-samples",
            "100",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Assert: a human line with a time and an accuracy, and a machine-readable one.
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"loop \d+\.\d+ s, process \d+\.\d+ s, final accuracy 0\.\d{4}", done.stdout)
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["rounds"] == 2
    assert 0.0 <= result["final_accuracy"] <= 1.0
    assert 0.0 < result["loop_s"] <= result["process_s"]


def test_process_vs_threads_smoke(tmp_path: Path) -> None:
    # Execute
    done = subprocess.run(
        [sys.executable, str(BENCH / "process_vs_threads.py"), "--clients", "2", "--repeat", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Assert: both sides timed, and their ratio
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"intra-op threads +\d+\.\d+ s", done.stdout)
    assert re.search(r"worker processes x 1 thread +\d+\.\d+ s", done.stdout)
    assert re.search(r"processes are \d+\.\d+x as fast", done.stdout)


def test_aggregation_cost_smoke(tmp_path: Path) -> None:
    # Execute: a mean and a robust rule at K = 3 on the small CNN, each in its own subprocess
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "aggregation_cost.py"),
            "--clients",
            "3",
            "--model",
            "cnn_small",
            "--strategies",
            "fedavg,krum",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Assert: a table row per strategy, and the machine-readable rows
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("fedavg", "krum"):
        assert re.search(rf"^{name} +3 +\d+\.\d{{3}} +-?\d+\.\d", done.stdout, re.MULTILINE), done.stdout
    rows = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert [r["strategy"] for r in rows] == ["fedavg", "krum"]
    assert all(r["seconds"] > 0 and r["clients"] == 3 for r in rows)


@pytest.mark.slow
def test_round_deadline_smoke(tmp_path: Path, prefect_home: Path) -> None:
    # Execute: two one-round sweeps of 4 clients, half the attempts hanging (on the session's Prefect server)
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "round_deadline.py"),
            "--rounds",
            "1",
            "--clients",
            "4",
            "--p",
            "0.5",
            "--task-timeout",
            "1",
            "--deadline",
            "2",
            "--out",
            str(tmp_path / "out.json"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=sweep_env(prefect_home),
    )
    # Assert: both sides timed, their ratio, the verdict (the deadline's bounds in seconds are proved by
    # tests/flows/test_round_deadline.py, with no other sweep beside it; the benchmark measures them)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    line = (
        r"^no deadline +round mean +\d+\.\d+ s +max +\d+\.\d+ s "
        r"+\(training max +\d+\.\d+ s, evaluation max +\d+\.\d+ s\) +accuracy 0\.\d{4}"
    )
    assert re.search(line, done.stdout, re.M), done.stdout
    assert re.search(r"^deadline 2 s +round mean +\d+\.\d+ s", done.stdout, re.M), done.stdout
    assert re.search(r"no deadline / deadline: mean round \d+\.\d+x, max round \d+\.\d+x", done.stdout)
    assert re.search(r"^every round within the deadline \+ 5 s \(7 s\): (yes|NO)", done.stdout, re.M)
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["rounds"] == 1 and result["mean_ratio"] > 0
    side = json.loads((tmp_path / "out.json").read_text())["runs"]["deadline 2 s"]
    assert len(side["round_s"]) == 1 and side["max_train_s"] > 0, side


def test_bare_loop_fedprox_term_pulls_towards_the_global_model() -> None:
    # Prepare: the bare loop's CNN, 8 samples, 2 steps of batch 4 from the same start and batch order
    bare = load_script("bare_loop")
    x, y = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 10
    start = {k: v.clone() for k, v in bare.build_cnn(0).state_dict().items()}
    moved = {}
    # Execute: FedAvg's plain SGD (mu=0) and FedProx's with a strong proximal term
    for mu in (0.0, 50.0):
        model = bare.build_cnn(0)
        order = [torch.Generator().manual_seed(2)]
        bare.train_client(model, x, y, epochs=1, batch_size=4, lr=0.01, gen=order, mu=mu)
        moved[mu] = sum(float(((v - start[k]) ** 2).sum()) for k, v in model.state_dict().items())
    # Assert: both trained; mu/2 * ||w - w_global||^2 kept FedProx's weights nearer the start
    assert moved[0.0] > 0 and moved[50.0] > 0
    assert moved[50.0] < moved[0.0]


def test_bare_loop_reads_model_sizes_from_conf() -> None:
    # Execute
    bare = load_script("bare_loop")
    small, mcmahan = bare.build_cnn(0, "cnn_small"), bare.build_cnn(0, "cnn")
    # Assert: conf/model's parameter counts (cnn_small.yaml and cnn.yaml say 80,202 and 1,663,370)
    assert sum(p.numel() for p in small.parameters()) == 80_202
    assert sum(p.numel() for p in mcmahan.parameters()) == 1_663_370


def test_vs_peers_skips_a_missing_peer_and_says_how_to_make_it(tmp_path: Path) -> None:
    # Execute: Flower's side only, with a python that does not exist
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "vs_peers.py"),
            "--only",
            "flower",
            "--flower-python",
            str(tmp_path / "nope"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Assert: one line naming the python and the commands that make the virtualenv; nothing else run
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("vs_peers: skipping flower:"))
    assert str(tmp_path / "nope") in line
    assert "python -m venv --system-site-packages .venv-flwr && .venv-flwr/bin/pip install" in line
    assert "flwr[simulation]==1.42.*" in line
    assert json.loads(done.stdout.split("RESULT ", 1)[1]) == {}


def test_vs_peers_rejects_an_unknown_side_or_setting(tmp_path: Path) -> None:
    # Execute
    side = subprocess.run(
        [sys.executable, str(BENCH / "vs_peers.py"), "--only", "bare,tff"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    knob = subprocess.run(
        [sys.executable, str(BENCH / "vs_peers.py"), "--only", "bare", "--set", "clinets=3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Assert: exit 2 and a line naming what is wrong
    assert side.returncode == 2 and "--only: unknown side(s) tff" in side.stderr
    assert knob.returncode == 2 and "--set: unknown key(s) or no '=' in clinets=3" in knob.stderr


def test_vs_peers_kills_a_side_past_its_time_with_its_children(tmp_path: Path) -> None:
    # Prepare: a "Flower python" that imports anything and then hangs in a child process
    fake = tmp_path / "python"
    fake.write_text(
        f'#!/bin/sh\ncase "$1" in -c) exit 0;; esac\nsleep 120 &\necho $! > {tmp_path}/child\nwait\n'
    )
    fake.chmod(0o755)
    # Execute
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "vs_peers.py"),
            "--only",
            "flower",
            "--flower-python",
            str(fake),
            "--side-timeout",
            "2",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Assert: the side is killed, its child with it, and said so; with no side left, a failing exit
    assert "flower_sim.py (over 2 s: killed) failed" in done.stdout, done.stdout + done.stderr
    assert "vs_peers: flower is left out from here on" in done.stdout
    assert done.returncode == 1 and "vs_peers: no side finished" in done.stderr
    assert (
        not psutil.pid_exists(int((tmp_path / "child").read_text()))
        or psutil.Process(int((tmp_path / "child").read_text())).status() == psutil.STATUS_ZOMBIE
    )


@pytest.mark.slow
def test_vs_peers_bare_and_fedsweep_smoke(tmp_path: Path, prefect_home: Path) -> None:
    # Execute: one round of 10 tiny clients, the bare loop and the real CLI (the peers need their own venvs)
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "vs_peers.py"),
            "--only",
            "bare,fedsweep",
            "--rounds",
            "1",
            "--set",
            "clients=10",
            "--set",
            "samples_per_client=50",
            "--set",
            "test_samples=200",
            "--out",
            str(tmp_path / "peers.json"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=sweep_env(prefect_home),  # the session's Prefect server
    )
    # Assert: both sides timed with ratios; the same data, selection and batches give the same accuracy
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    for side in ("bare", "fedsweep"):
        line = rf"^  {side} +wall +\d+\.\d s +per round +\d+\.\d\d s +\d+\.\d\dx /"
        assert re.search(line, done.stdout, re.M), done.stdout
    summary = json.loads((tmp_path / "peers.json").read_text())["summary"]
    assert summary["bare"]["rounds_run"] == summary["fedsweep"]["rounds_run"] == 1
    assert summary["fedsweep"]["accuracies"][0] == pytest.approx(summary["bare"]["accuracies"][0], abs=0.01)
    assert summary["fedsweep"]["train_s"] > 0 and summary["bare"]["eval_s"] > 0
    # ... and the Prefect server's CPU beside fedsweep's rounds
    assert re.search(r"^  fedsweep's Prefect server: \d+\.\d s of CPU, \d+ ms a round", done.stdout, re.M)
    assert summary["fedsweep"]["server_cpu_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["flower", "pfl"])
def test_peer_program_trains_the_bare_loops_workload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, peer: str
) -> None:
    # Prepare: the peer's own virtualenv (flwr and prefect cannot share one), else skip
    monkeypatch.syspath_prepend(str(BENCH))
    spec = load_script("vs_peers").PEERS[peer]
    python = spec.python(None)
    if why := spec.missing(python):
        pytest.skip(f"no {peer} virtualenv here (CI has none): {why}")
    flags = ["--rounds", "2", "--clients", "10", "--samples-per-client", "50", "--test-samples", "200"]
    # Execute: the peer program and the bare loop on the same tiny workload
    ran = {
        name: subprocess.run(
            [exe, str(script), *flags], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
        )
        for name, exe, script in (
            (peer, python, BENCH / "peers" / spec.script),
            ("bare", sys.executable, BENCH / "bare_loop.py"),
        )
    }
    # Assert: both finished; identical data, selection and batch order give the bare loop's accuracy
    results = {}
    for name, done in ran.items():
        assert done.returncode == 0, done.stderr[-3000:]
        results[name] = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert results[peer]["rounds"] == 2
    assert results[peer]["final_accuracy"] == pytest.approx(results["bare"]["final_accuracy"], abs=0.01)


def flat(rounds: int, base: float = 900.0, step: float = 0.0) -> list[tuple[int, float]]:
    return [(r, base + step * r) for r in range(1, rounds + 1)]


def test_flat_curve_passes() -> None:
    s = memory_curve.summarise(flat(100, step=0.1))

    assert s.passed is True
    assert s.rounds == 100
    assert s.at_start == pytest.approx(901.0) and s.at_end == pytest.approx(910.0)
    assert s.growth == pytest.approx(9.0)


def test_growth_is_measured_from_round_10_and_limit_is_inclusive() -> None:
    # Early growth (rounds 1-10: +300 MB of warm-up) does not count; 50 MB after it still passes.
    curve = [(r, 600.0 + 30.0 * r) for r in range(1, 11)] + [
        (r, 900.0 + 50.0 * (r - 10) / 90) for r in range(11, 101)
    ]
    s = memory_curve.summarise(curve)

    assert s.at_start == pytest.approx(900.0)
    assert s.growth == pytest.approx(50.0)
    assert s.passed is True
    assert s.peak == pytest.approx(950.0)


def test_leaking_curve_fails() -> None:
    s = memory_curve.summarise(flat(100, step=1.0))  # +1 MB a round: the seeds' crash pattern

    assert s.growth == pytest.approx(90.0)
    assert s.passed is False


def test_short_or_unsorted_curves() -> None:
    short = memory_curve.summarise(flat(5, step=2.0))
    shuffled = memory_curve.summarise(list(reversed(flat(20, step=1.0))))

    assert short.passed is None and short.growth == pytest.approx(8.0)
    assert shuffled.at_start == pytest.approx(910.0) and shuffled.at_end == pytest.approx(920.0)
    with pytest.raises(ValueError, match="empty"):
        memory_curve.summarise([])


def test_reads_curves_from_a_real_mlflow_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Prepare: one experiment, a parent run without rss_mb, a flat cell and a leaking cell.
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    db = tmp_path / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.create_experiment("scale100", artifact_location=(tmp_path / "art").as_uri())
    client.create_run(exp, run_name="scale100")
    for name, step in (("fedavg-c100-r100-s0-avg", 0.1), ("fedprox-c100-r100-s0-mu1", 1.0)):
        run = client.create_run(exp, run_name=name)
        metrics = [Metric("rss_mb", v, 0, r) for r, v in flat(30, step=step)]
        client.log_batch(run.info.run_id, metrics=metrics)
    # Execute
    curves = memory_curve.read_curves(db, experiment="scale100")
    code = memory_curve.main([str(db), "--experiment", "scale100", "--max-growth-mb", "15"])
    out = capsys.readouterr().out
    # Assert
    assert sorted(curves) == ["fedavg-c100-r100-s0-avg", "fedprox-c100-r100-s0-mu1"]
    assert curves["fedavg-c100-r100-s0-avg"][:2] == [(1, pytest.approx(900.1)), (2, pytest.approx(900.2))]
    assert code == 1  # the leaking cell grew 20 MB from round 10 to 30
    assert re.search(r"fedavg-c100-r100-s0-avg .* PASS", out)
    assert re.search(r"fedprox-c100-r100-s0-mu1 .* FAIL", out)
    assert memory_curve.main([str(db), "--experiment", "scale100", "--max-growth-mb", "25"]) == 0
    assert memory_curve.main([str(tmp_path / "missing.db")]) == 2


@pytest.mark.slow
def test_parallel_cells_smoke(tmp_path: Path) -> None:
    # Execute: two cells of the quickstart, one round, two at a time (a whole sweep, against a server
    # of the script's own on a fresh database: what it measures)
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "parallel_cells.py"),
            "--experiment",
            "quickstart",
            "--grid=",
            "--rounds",
            "1",
            "--set",
            "num_clients=10",
            "--parallel",
            "2",
            "--out",
            str(tmp_path / "cells.json"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    # Assert: the run timed and read back from Prefect, its weights (the comparison of runs: below)
    assert done.returncode == 0, done.stderr[-3000:]
    line = r"sqlite +parallel_cells=2 +wall +\d+\.\d s +503s +\d+ +lag median/max \d+\.\d\d / \d+\.\d\d s"
    assert re.search(line, done.stdout), done.stdout
    assert re.search(r"sqlite/2: wall \d+\.\d s, 1\.00x as fast as parallel_cells=2", done.stdout)
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["same_hashes"] is True and result["cells"] == 2
    runs = json.loads((tmp_path / "cells.json").read_text())["runs"]
    assert [r["parallel"] for r in runs] == [2] and all(r["task_runs"] > 20 for r in runs)
    assert len(runs[0]["hashes"]) == 2 and all(len(h) == 64 for h in runs[0]["hashes"].values())


def test_parallel_cells_compares_runs_by_their_medians_and_weights() -> None:
    # Prepare: P = 1 and P = 2 on sqlite, twice each, with the same weights; then one run differing
    bench = load_script("parallel_cells")
    same = {"fedavg-c10-r1-s0": "a" * 64, "fedprox-c10-r1-s0": "b" * 64}
    runs = [
        {"database": "sqlite", "parallel": p, "wall_s": wall, "hashes": same}
        for p, wall in ((1, 10.0), (2, 6.0), (2, 4.0), (1, 12.0))
    ]
    # Execute
    summary = bench.summarise(runs, [1, 2])
    other = bench.summarise(
        [*runs[:3], {**runs[3], "hashes": {**same, "fedavg-c10-r1-s0": "c" * 64}}], [1, 2]
    )
    # Assert: medians, each P's speed-up over the first, and whether every run ended with the same weights
    assert summary["median_wall_s"] == {"sqlite/1": 11.0, "sqlite/2": 5.0}
    assert summary["speedup"] == {"sqlite/1": 1.0, "sqlite/2": pytest.approx(2.2)}
    assert "sqlite/2: wall 5.0 s, 2.20x as fast as parallel_cells=1" in summary["lines"]
    assert summary["same_hashes"] is True and summary["cells"] == 2 and other["same_hashes"] is False


def test_partition_scale_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    # Execute: two options, a tiny split each, in child processes as the script runs them
    code = load_script("partition_scale").main(
        ["--samples", "2000", "--clients", "100", "--options", "iid", "powerlaw"]
    )
    # Assert
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0].startswith("load average")
    for option, line in zip(["iid", "powerlaw"], lines[1:], strict=True):
        assert line.startswith(option) and "clients=100" in line
        assert json.loads(line.split(": ", 1)[1])["seconds"] >= 0


def test_selection_cost_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    # Execute: every selection option, two rounds at 30 clients
    code = load_script("selection_cost").main(["--clients", "30", "--rounds", "2", "--k", "3"])
    # Assert: one row of figures per option in conf/selection/
    lines = capsys.readouterr().out.splitlines()
    options = sorted(
        p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "selection").glob("*.yaml")
    )
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| selector")]
    assert code == 0 and [r.split(" | ")[0][2:] for r in rows] == options
    assert all(float(r.split(" | ")[1].rstrip(" |")) >= 0 for r in rows)


def test_startup_sums_import_time_by_top_level_package() -> None:
    # Prepare: `python -X importtime` lines (self, cumulative, name; nested names indented)
    traced = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:      1500 |       1500 |     torch._C",
            "import time:    500000 |     501500 |   torch",
            "import time:       250 |        250 | prefect.settings",
            "a line of the sweep's own output",
        ]
    )
    # Execute
    per = load_script("startup").import_breakdown(traced)
    # Assert: seconds, largest first
    assert per == {"torch": pytest.approx(0.5015), "prefect": pytest.approx(0.00025)}


def test_startup_runs_the_before_side_under_its_own_interpreter(tmp_path: Path) -> None:
    # Prepare: a stand-in interpreter (a real executable) that records how it was called
    calls = tmp_path / "calls.txt"
    other = tmp_path / "other-python"
    other.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    other.chmod(0o755)
    startup = load_script("startup")
    side = startup.Checkout(BENCH.parent, tmp_path / "work", "before", python=str(other))
    # Execute
    side.run("import-torch")
    side.sweep(tmp_path, tmp_path / "run")
    # Assert: both scenarios ran the given interpreter, not the script's
    lines = calls.read_text().splitlines()
    assert lines[0] == "-c import torch" and lines[1].startswith(str(BENCH.parent / "flows" / "sweep.py"))


def test_startup_names_each_interpreters_prefect_and_mlflow() -> None:
    # Execute
    named = load_script("startup").versions(sys.executable)
    # Assert
    from importlib.metadata import version

    assert named == f"prefect {version('prefect')}, mlflow {version('mlflow')}"


def test_million_clients_command_is_a_valid_sweep(tmp_path: Path) -> None:
    # Prepare: the benchmark's own command, checked by the sweep's dry run (no Prefect, nothing written)
    bench = load_script("million_clients")
    argv = bench.command(clients=1000, selector="oort", rounds=2, samples=2000, name="million-oort-1000")
    # Execute
    done = subprocess.run([*argv, "--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    # Assert
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 cell" in done.stdout and "new" in done.stdout and not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_million_clients_smoke(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, prefect_home: Path
) -> None:
    # Prepare: its sweeps on the session's Prefect server
    for name in [n for n in os.environ if n.startswith(("PREFECT_API", "FEDSWEEP_"))]:
        monkeypatch.delenv(name)
    for name, value in sweep_env(prefect_home).items():
        monkeypatch.setenv(name, value)
    # Execute: a tiny whole sweep (300 clients over a pool of 600 samples)
    code = load_script("million_clients").main(
        ["--clients", "300", "--rounds", "2", "--selectors", "uniform", "--samples", "600"]
    )
    # Assert: one JSON line per point with every part of a round, then the table
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert code == 0 and [r["clients"] for r in rows] == [300]
    assert all(r["round_seconds"] > 0 and r["plan_seconds"] >= 0 and r["rss_mb"] > 0 for r in rows)
    assert "| uniform | 300 |" in out


def test_shared_server_reports_silences_ratios_and_hashes() -> None:
    # Prepare: shared_server.py's report of two phases, one sweep silent too long together
    sys.path.insert(0, str(BENCH))
    shared = load_script("shared_server")
    sweep = {"code": 0, "silence_after": "a line", "delayed_lines": 0, "tail": ""}
    alone = {**sweep, "wall_s": 40.0, "silence_s": 4.0, "hashes": {"cell-a": "1"}}
    together = {**sweep, "wall_s": 50.0, "silence_s": 12.5, "hashes": {"cell-a": "1"}}
    phases = {
        name: {"phase": name, "server_cpu_s": 3.0, "server_503s": 0, "load_before": 1.0, "load_after": 1.5,
               "sweeps": [run]}
        for name, run in (("alone", alone), ("together", together))
    }  # fmt: skip
    # Execute
    lines = shared.report(phases, ["+experiment=quickstart"])
    # Assert: the ratio, both silences, the equal hashes, and the verdict
    assert re.search(r"^\+experiment=quickstart +40\.0 +50\.0 +1\.25 +4\.0/12\.5 +0/0$", lines[1]), lines
    assert "  silent 12.5 s after: a line" in lines
    assert "  1 cells, hashes alone == together: True" in lines
    assert lines[-1].endswith("NOT met")


def test_shared_server_finds_the_longest_silence_of_an_output() -> None:
    sys.path.insert(0, str(BENCH))
    shared = load_script("shared_server")
    out = shared.Output.__new__(shared.Output)
    out.chunks = [(1.0, "starting"), (2.0, "bar 1/2"), (9.5, "bar 2/2"), (10.0, "summary")]
    assert out.longest_silence(end=12.0) == (7.5, "bar 1/2")
