"""Per-file work through submitit (seda.cluster), with submitit's local executor in place of SLURM:
the same outcomes and bytes as the local pool, a job's disk-full error stops the run, a chunk
whose job died runs again, a preempted job resumes with the files it finished."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import soundfile as sf
from omegaconf import OmegaConf

from seda.cluster import ChunkJob, ExecutorSettings, JobFailure, load_executor
from seda.errors import ConfigError
from seda.parallel import EnvironmentFailure, map_files
from seda.stages import clean as clean_mod

submitit = pytest.importorskip("submitit")

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf" / "executor"


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job processes unpickle this module's functions: put tests/ on their import path."""
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO / "tests"), path])))


def executor_file(tmp_path: Path, **changes: object) -> str:
    """conf/executor/submitit_local.yaml with its logs in tmp_path, quick polling, ``changes``."""
    conf = OmegaConf.merge(
        OmegaConf.load(CONF / "submitit_local.yaml"),
        {"log_folder": str(tmp_path / "logs"), "poll_seconds": 0.1, **changes},
    )
    path = tmp_path / f"executor{len(list(tmp_path.glob('executor*.yaml')))}.yaml"
    OmegaConf.save(conf, path)
    return str(path)


def square(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad input")
    if x == 5:
        raise KeyError("a bug")
    return x * x


def outcomes(executor: str | None, fn=square, items=range(8)) -> list[tuple]:
    got = map_files(fn, list(items), workers=1, known_errors=(ValueError,), executor=executor)
    return sorted((o.item, o.result, o.error) for o in got)


def test_jobs_give_the_outcomes_of_the_local_pool(tmp_path: Path) -> None:
    local = outcomes("local")
    assert (3, None, "three is bad input") in local
    assert (5, None, "unexpected KeyError: 'a bug'") in local
    assert outcomes(executor_file(tmp_path, chunk_size=3)) == local
    logs = list((tmp_path / "logs").glob("*_log.out"))
    assert len(logs) == 3  # 8 items in chunks of 3
    assert not list((tmp_path / "logs").glob("*.pkl")), "finished jobs' pickles are removed"


def write_full(path: str) -> int:
    with open("/dev/full", "w") as fh:
        fh.write(path)
        fh.flush()
    return 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_in_a_job_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentFailure, match=r"^No space left on device: a\.wav$"):
        list(map_files(write_full, ["a.wav", "b.wav"], executor=executor_file(tmp_path)))


def die_once(item: tuple[int, str]) -> int:
    """Kills its job process the first time it sees item 2 (a node failure, an OOM kill)."""
    x, marker = item
    if x == 2 and not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return x * 10


def always_die(x: int) -> int:
    os._exit(1)


def test_a_chunk_whose_job_died_runs_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = [(x, str(tmp_path / "died")) for x in range(5)]
    expected = [(item, item[0] * 10, None) for item in items]
    with caplog.at_level("WARNING", logger="seda.cluster"):
        got = outcomes(executor_file(tmp_path, chunk_size=2), die_once, items)
    assert got == expected
    assert (tmp_path / "died").exists()
    assert any("failed; resubmitting" in r.getMessage() for r in caplog.records)

    with pytest.raises(JobFailure, match=r"failed 2 times; see .*_log\.err"):
        outcomes(executor_file(tmp_path, max_retries=1), always_die, [1])


def slow_logged(item: tuple[int, str]) -> int:
    """Takes a while, then notes that its process finished ``item``."""
    x, log = item
    time.sleep(0.4)
    with open(log, "a") as fh:
        fh.write(f"{x} {os.getpid()}\n")
    return -x


def test_a_preempted_job_resumes_with_the_files_it_finished(tmp_path: Path) -> None:
    import cloudpickle

    log = tmp_path / "finished.txt"
    items = [(x, str(log)) for x in range(6)]
    executor = submitit.AutoExecutor(folder=tmp_path / "logs", cluster="local")
    executor.update_parameters(timeout_min=30)
    payload = cloudpickle.dumps((slow_logged, items, ()))
    job = executor.submit(ChunkJob(payload, len(items), 1, str(tmp_path)))
    deadline = time.monotonic() + 60
    while not (log.exists() and len(log.read_text().splitlines()) >= 2):
        assert time.monotonic() < deadline and not job.done(), "the job did not start"
        time.sleep(0.05)
    first_pid = int(log.read_text().split()[1])
    os.kill(first_pid, signal.SIGUSR2)  # what SLURM sends before preempting a job
    result = job.result()
    assert [(o.item, o.result, o.error) for o in result.outcomes] == [
        (item, -item[0], None) for item in items
    ]
    finished = dict(line.split() for line in log.read_text().splitlines())
    assert sorted(int(x) for x in finished) == list(range(6)), "each file once"
    assert {finished["0"], finished["1"]} == {str(first_pid)}
    assert str(first_pid) != finished["5"], "the rest ran in the requeued job"
    assert "preempted" in Path(job.paths.stderr).read_text() + Path(job.paths.stdout).read_text()


def test_the_clean_stage_writes_the_same_bytes_through_submitit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_clean import params, utterance, write_manifest

    def run_in(root: Path) -> dict[str, bytes]:
        root.mkdir()
        monkeypatch.chdir(root)
        shutil.copytree(CONF, "conf/executor")
        files = {f"w{i}": Path(f"w{i}.wav") for i in range(4)}
        for i, path in enumerate(files.values()):
            sf.write(path, utterance([1.2 + i, 1.5], 16000), 16000, subtype="PCM_16")
        files["bad"] = Path("bad.wav")
        files["bad"].write_bytes(b"not audio" * 50)
        write_manifest(Path("data/separated/manifest.csv"), files)
        clean_mod.run(params(), manifest="data/separated/manifest.csv", out_dir="data/clean")
        out = Path("data/clean")
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.*")}

    local = run_in(tmp_path / "local")
    monkeypatch.setenv("SEDA_EXECUTOR", "submitit_local")
    jobs = run_in(tmp_path / "jobs")
    assert len(local) > 4 and "rejected.csv" in local
    assert jobs == local
    assert list(Path(".seda/submitit").glob("*_log.out")), "no job ran"


def test_featurize_writes_the_same_store_through_submitit_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backbone batches go to jobs (the backbone loaded once per job), planned over all clips:
    the same feature store, byte for byte, with an unreadable clip rejected the same way."""
    from seda.stages import featurize
    from test_featurize import SPLITS, tiny_params, write_splits

    def run_in(root: Path, executor: str | None) -> dict[str, bytes]:
        root.mkdir()
        monkeypatch.chdir(root)
        rows = write_splits(root, n_speakers=3, per_label=3)
        Path(rows[4]["path"]).write_bytes(b"RIFF....WAVEnot audio at all")
        if executor:
            monkeypatch.setenv("SEDA_EXECUTOR", executor)
        featurize.run(tiny_params(), ["hubert"], splits=SPLITS, out=Path("features"))
        monkeypatch.delenv("SEDA_EXECUTOR", raising=False)
        return {p.name: p.read_bytes() for p in Path("features/hubert").iterdir()}

    local = run_in(tmp_path / "local", None)
    jobs = run_in(tmp_path / "jobs", executor_file(tmp_path, chunk_size=4))
    assert b"s0_sad_1" in local["rejected.csv"] and b"s0_sad_0" not in local["rejected.csv"]
    assert jobs == local
    assert len(list((tmp_path / "logs").glob("*_log.out"))) > 1, "the batches ran in several jobs"


def test_executors_are_named_files_and_typos_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEDA_EXECUTOR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_executor() == ExecutorSettings()  # nothing chosen: this machine's cores
    shutil.copytree(CONF, "conf/executor")
    for path in CONF.glob("*.yaml"):
        assert load_executor(path.stem) == load_executor(str(path))
    assert load_executor("slurm").engine == "submitit"
    monkeypatch.setenv("SEDA_EXECUTOR", "submitit_local")
    assert load_executor().cluster == "local"
    with pytest.raises(
        ConfigError, match=r"'slrum'.*known: local, slurm, slurm_gpu, submitit_local"
    ):
        load_executor("slrum")
    Path("typo.yaml").write_text("engine: submitit\nchunk_sise: 4\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: executor has unknown key.*chunk_sise"):
        load_executor("typo.yaml")
    Path("bad.yaml").write_text("engine: submitit\nchunk_size: 0\n")
    with pytest.raises(ConfigError, match="chunk_size must be at least 1"):
        load_executor("bad.yaml")


@pytest.mark.slow
def test_predict_through_submitit_writes_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_predict import run_predict, speech_file, train_models

    models = train_models(tmp_path / "trained")
    monkeypatch.chdir(tmp_path)
    speech_file(tmp_path / "a.wav", ("angry", "sad"))
    speech_file(tmp_path / "b.wav", ("calm", "angry", "calm"), seed=2)
    args = ["a.wav", "b.wav", "--model", "baseline"]
    assert run_predict(models, *args, "--out", "local.csv") == 0
    executor = executor_file(tmp_path, chunk_size=1)
    assert run_predict(models, *args, "--out", "jobs.csv", "--executor", executor) == 0
    assert Path("jobs.csv").read_bytes() == Path("local.csv").read_bytes()
    assert len(list((tmp_path / "logs").glob("*_log.out"))) == 2
    capsys.readouterr()
    assert run_predict(models, *args, "--executor", "nope") == 2
    assert "executor 'nope': conf/executor/nope.yaml not found" in capsys.readouterr().err
