"""Planted, truncated and foreign files among Prefect's persisted results (server/untrusted.py).

A record whose metadata names the pickle serializer, or a JSON serializer with a hostile decoder,
runs code when Prefect reads it. The guard must remove such files without ever decoding them, keep
the records fedsweep's tasks write, and leave nothing that Prefect's own reader would execute.
"""

import base64
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
from prefect.results import resolve_serializer
from prefect.serializers import JSONSerializer

from server.untrusted import UntrustedResultError, expected_serializer, guard_results


class _Touch:
    """Unpickling this opens (and so creates) `path`: the evidence that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def good_record(key: str) -> bytes:
    """A record exactly as a fedsweep task persists one (plain data, Prefect's JSON serializer)."""
    metadata = ResultRecordMetadata(storage_key=key, serializer=resolve_serializer("json"))
    return ResultRecord(
        metadata=metadata,
        result={"key": "round-000001/c00003-e0", "sha256": "ab" * 32, "client": 3, "loss": 0.5},
    ).serialize()


def record(serializer: dict, result: str) -> bytes:
    return json.dumps(
        {
            "metadata": {
                "storage_key": "x",
                "expiration": None,
                "serializer": serializer,
                "prefect_version": "3.8.8",
                "storage_block_id": None,
            },
            "result": result,
        }
    ).encode()


def plant(results: Path, marker: Path) -> dict[str, bytes | None]:
    """Every kind of untrusted file (content, or None for what is not a plain file), and one good one."""
    evil = base64.b64encode(pickle.dumps(_Touch(marker))).decode()
    shell = json.dumps({"touch": 0, str(marker): 0})  # subprocess.call(dict) runs `touch <marker>`
    default = JSONSerializer().model_dump(mode="json")
    files: dict[str, bytes | None] = {
        "cell/round-000001/good": good_record("cell/round-000001/good"),
        "cell/round-000001/pickle": record({"type": "pickle", "picklelib": "pickle"}, evil),
        "cell/round-000001/json-hostile-decoder": record(
            {**default, "object_decoder": "subprocess.call"}, shell
        ),
        "cell/round-000001/json-hostile-lib": record({**default, "jsonlib": "pickle"}, "{}"),
        "cell/round-000001/json-class-marker": record(
            default, json.dumps({"a": {"__class__": "os.system", "data": "true"}})
        ),
        "cell/round-000002/truncated": good_record("t")[:40],
        "cell/round-000002/foreign": os.urandom(64),
        "cell/round-000002/raw-pickle": pickle.dumps(_Touch(marker)),
        "cell/round-000002/old-format": json.dumps({"data": evil, "serializer": {"type": "pickle"}}).encode(),
    }
    for rel, content in files.items():
        (results / rel).parent.mkdir(parents=True, exist_ok=True)
        (results / rel).write_bytes(content)
    os.symlink(results / "cell/round-000001/good", results / "cell/round-000002/link")
    os.mkfifo(results / "cell/round-000002/fifo")
    files["cell/round-000002/link"] = files["cell/round-000002/fifo"] = None
    return files


def test_a_planted_pickle_record_really_runs_code_in_prefect(tmp_path: Path) -> None:
    # Prepare: what the guard defends against, shown with Prefect's own reader
    marker = tmp_path / "pwned"
    evil = base64.b64encode(pickle.dumps(_Touch(marker))).decode()
    # Execute
    ResultRecord.deserialize(record({"type": "pickle", "picklelib": "pickle"}, evil))
    # Assert
    assert marker.exists()


def test_guard_removes_every_untrusted_file_without_running_it(tmp_path: Path) -> None:
    # Prepare
    results, marker = tmp_path / "prefect-results", tmp_path / "pwned"
    files = plant(results, marker)
    # Execute
    removed = guard_results(results)
    # Assert
    assert sorted(rel for rel, _ in removed) == sorted(rel for rel in files if not rel.endswith("/good"))
    assert not marker.exists()
    left = [p for p in results.rglob("*") if p.is_file()]
    assert [p.relative_to(results).as_posix() for p in left] == ["cell/round-000001/good"]
    for path in left:  # what is left is safe for Prefect's own reader
        assert ResultRecord.deserialize(path.read_bytes()).result["client"] == 3
    assert not marker.exists()


def test_guard_names_the_reason_and_keeps_a_clean_folder_untouched(tmp_path: Path) -> None:
    # Prepare
    results = tmp_path / "prefect-results"
    plant(results, tmp_path / "pwned")
    # Execute
    reasons = dict(guard_results(results))
    again = guard_results(results)
    # Assert
    assert reasons["cell/round-000001/pickle"] == "serializer 'pickle' is not Prefect's plain JSON serializer"
    assert reasons["cell/round-000001/json-hostile-decoder"].startswith("serializer 'json' is not")
    assert reasons["cell/round-000001/json-class-marker"] == "result asks the decoder to import a class"
    assert reasons["cell/round-000002/truncated"] == "not valid JSON (foreign or damaged)"
    assert reasons["cell/round-000002/link"] == "a symlink"
    assert reasons["cell/round-000002/fifo"] == "not a regular file"
    assert again == []
    assert guard_results(tmp_path / "absent") == []


def test_torn_writes_and_failed_task_records_of_our_own_are_removed_silently(tmp_path: Path, caplog) -> None:
    # Prepare: records cut where a killed writer stops (Prefect writes in place), and a look-alike
    folder = tmp_path / "prefect-results" / "cell" / "round-000001"
    folder.mkdir(parents=True)
    whole = good_record(str(folder / "c1"))
    (folder / "c1").write_bytes(whole[: len(whole) // 2])
    (folder / "c2").write_bytes(b"")
    (folder / "c3").write_bytes(good_record(str(folder / "elsewhere"))[:-10])
    failure = json.dumps({"__exc_type__": "fedsweep.faults.base.TransientFailure", "message": "injected"})
    name = "0123456789abcdef0123456789abcdef"
    for where, key in ((folder.parent, name), (folder, "elsewhere")):
        raw = json.loads(record(JSONSerializer().model_dump(mode="json"), failure))
        raw["metadata"]["storage_key"] = str(where / key)
        (where / name).write_text(json.dumps(raw))
    # Execute
    with caplog.at_level("INFO", logger="fedsweep"):
        reasons = dict(guard_results(tmp_path / "prefect-results"))
    # Assert
    torn = "a torn write of an interrupted run"
    assert reasons == {
        "cell/round-000001/c1": torn,
        "cell/round-000001/c2": torn,
        "cell/round-000001/c3": "not valid JSON (foreign or damaged)",
        f"cell/{name}": "the exception record of a failed task",
        f"cell/round-000001/{name}": "result asks the decoder to import a class",
    }
    warnings = sorted(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert (
        len(warnings) == 2
        and name in warnings[0]
        and warnings[1].endswith("c3 (not valid JSON (foreign or damaged)); its task will be recomputed")
    )


def test_the_expected_serializer_is_the_one_fedsweep_tasks_use() -> None:
    # Assert: tasks declare result_serializer="json", which Prefect resolves like this
    assert resolve_serializer("json").model_dump(mode="json") == expected_serializer()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root deletes through permission bits")
def test_an_untrusted_file_that_cannot_be_removed_stops_the_sweep(tmp_path: Path) -> None:
    # Prepare
    folder = tmp_path / "prefect-results" / "cell"
    folder.mkdir(parents=True)
    (folder / "bad").write_bytes(b"\x80\x04garbage")
    folder.chmod(0o555)
    try:
        # Execute / Assert
        with pytest.raises(UntrustedResultError, match="cannot remove untrusted Prefect result"):
            guard_results(tmp_path / "prefect-results")
    finally:
        folder.chmod(0o755)


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_sweep_removes_planted_results_before_prefect_reads_them(
    tmp_path: Path, prefect_home: Path
) -> None:
    # Prepare: hostile records where the one cell's round-1 client epochs will look for theirs
    from hydra import initialize_config_dir

    from cli.main import CONF_DIR
    from cli.plan import plan_overrides
    from fedsweep.cell.cell import open_cell
    from fedsweep.cell.layout import write_cell_config
    from fedsweep.rounds.blobs import start_round

    args = [
        "num_clients=4",
        "clients_per_round=2",
        "rounds=1",
        "tracking.enabled=false",
        "runner.progress=false",
        f"output_dir={tmp_path}/outputs",
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cell = plan_overrides("config", args).cells[0]
    scratch = str(tmp_path / "scratch")
    write_cell_config(scratch, key=cell["key"], name="scratch", config=cell["config"])
    methods = open_cell(scratch).methods
    ref = start_round(
        open_cell(scratch),
        round=1,
        params=methods.initial_params,
        server_state=methods.strategy.init_server_state(methods.initial_params),
    )["global"]
    epochs = cell["config"]["local_epochs"]
    marker = tmp_path / "pwned"
    evil = record(
        {"type": "pickle", "picklelib": "pickle"}, base64.b64encode(pickle.dumps(_Touch(marker))).decode()
    )
    planted = [
        tmp_path
        / "outputs/default/prefect-results"
        / cell["key"]
        / "round-000001"
        / f"c{c:05d}-e0x1of{epochs}-{ref['sha256'][:16]}-global"
        for c in range(4)
    ]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(evil)
    # Prefect's database and server are the session's (tests/conftest.py), not the user's ~/.prefect: a
    # sweep there would migrate it to this Prefect version, and an older Prefect sharing that database
    # could no longer start
    from sweep_cli import sweep_env

    # Execute
    proc = subprocess.run(
        [sys.executable, str(ROOT / "flows" / "sweep.py"), *args],
        cwd=tmp_path,
        env=sweep_env(prefect_home),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    # Assert
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists()
    assert not any(path.exists() and path.read_bytes() == evil for path in planted)
    assert "removed untrusted Prefect result" in proc.stderr
    assert (prefect_home / "prefect.db").exists()
