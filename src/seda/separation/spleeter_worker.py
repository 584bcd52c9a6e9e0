"""Spleeter worker: runs INSIDE the Spleeter virtualenv (TensorFlow 2.12, numpy<2), not in seda's.

It must import nothing from seda. The parent (:mod:`seda.separation.spleeter_backend`) starts one
worker per batch, writes the request as JSON on stdin::

    {"model": "spleeter:2stems" | "/path/config.json", "jobs": [[in, out], ...],
     "sample_rate": 44100, "chunk_seconds": 300.0, "ffmpeg": "/usr/bin/ffmpeg"}

(``MODEL_PATH`` in the environment says where Spleeter looks for model folders) and reads JSON
lines from stdout: ``{"index": i, "error": null | "reason"}`` once per job, in job order, or one
``{"fatal": "reason", "config": bool}`` when nothing can be separated.

TensorFlow and the checkpoint are loaded once; every file of the batch is streamed through a
single ``Estimator.predict`` call in ``chunk_seconds`` pieces (decoded and encoded by ffmpeg
pipes), so memory stays bounded for hour-long inputs. The voice stem is written as mono PCM16
WAV at ``sample_rate`` to a temporary name and renamed over the output only when complete.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

# Chunks shorter than this are merged into the previous one; files shorter are zero-padded.
MIN_SECONDS = 1.0


class JobError(Exception):
    """A per-file failure; its message is the reject reason."""


def _emit(stream, **record) -> None:
    stream.write(json.dumps(record) + "\n")
    stream.flush()


def resolve_model_dir(params: dict, model_path: str) -> Path:
    """The folder Spleeter restores the checkpoint from (as its ModelProvider resolves it)."""
    model_dir = Path(params["model_dir"])
    return model_dir if model_dir.is_absolute() else Path(model_path) / model_dir


class Decoder:
    """ffmpeg decoding one input to float32 stereo at the model rate, read in fixed-size chunks."""

    def __init__(self, ffmpeg: str, path: str, sr: int) -> None:
        if not Path(path).is_file():
            raise JobError(f"file not found: {path}")
        cmd = [
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-i",
            path,
            "-vn",
            "-f",
            "f32le",
            "-ac",
            "2",
            "-ar",
            str(sr),
            "-",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def read(self, frames: int) -> np.ndarray:
        data = self.proc.stdout.read(frames * 8)
        return np.frombuffer(data[: len(data) // 8 * 8], dtype="<f4").reshape(-1, 2)

    def finish(self) -> None:
        self.proc.stdout.close()
        err = self.proc.stderr.read().decode(errors="replace")
        if self.proc.wait() != 0:
            text = " ".join(err.split())[:200] or f"ffmpeg exit code {self.proc.returncode}"
            raise JobError(f"not decodable audio ({text})")


def iter_chunks(job_index: int, decoder: Decoder, chunk: int, min_len: int):
    """(job, is_last, valid_frames, waveform) per chunk; a short tail is merged into its chunk."""
    current = decoder.read(chunk)
    if current.shape[0] == 0:
        decoder.finish()
        raise JobError("no audio frames (empty or truncated file)")
    while True:
        following = decoder.read(chunk)
        if following.shape[0] < min_len:
            current = np.concatenate([current, following])
            decoder.finish()
            break
        yield job_index, False, current.shape[0], current
        current = following
    valid = current.shape[0]
    if valid < min_len:
        current = np.concatenate([current, np.zeros((min_len - valid, 2), np.float32)])
    if not np.all(np.isfinite(current)):
        raise JobError("NaN/inf samples")
    yield job_index, True, valid, current


class Encoder:
    """ffmpeg encoding mono float32 (model rate) to PCM16 WAV (output rate), atomically."""

    def __init__(self, ffmpeg: str, out: str, model_sr: int, out_sr: int) -> None:
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.parent / f".{self.out.name}.{os.getpid()}.tmp.wav"
        cmd = [
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "f32le",
            "-ar",
            str(model_sr),
            "-ac",
            "1",
            "-i",
            "-",
            "-ar",
            str(out_sr),
            "-acodec",
            "pcm_s16le",
            "-f",
            "wav",
            str(self.tmp),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, mono: np.ndarray) -> None:
        self.proc.stdin.write(np.ascontiguousarray(mono, dtype="<f4").tobytes())

    def commit(self) -> None:
        self.proc.stdin.close()
        err = self.proc.stderr.read().decode(errors="replace")
        if self.proc.wait() != 0:
            self.tmp.unlink(missing_ok=True)
            raise JobError(f"cannot write {self.out}: {' '.join(err.split())[:200]}")
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.tmp.unlink(missing_ok=True)


def separate_all(request: dict, out) -> None:
    """Separate every job of ``request``, reporting one JSON line per job on ``out``."""
    from spleeter.utils.configuration import load_configuration

    try:
        params = load_configuration(request["model"])
    except Exception as err:  # SpleeterError or bad JSON: a configuration problem
        _emit(out, fatal=f"cannot read Spleeter model configuration: {err}", config=True)
        return
    model_dir = resolve_model_dir(params, os.environ.get("MODEL_PATH", "pretrained_models"))
    if not (model_dir / "checkpoint").is_file():
        _emit(out, fatal=f"no Spleeter checkpoint in {model_dir}", config=True)
        return
    if "vocals" not in params["instrument_list"]:
        _emit(out, fatal=f"model {request['model']} has no 'vocals' stem", config=True)
        return
    params["model_dir"] = str(model_dir)

    import tensorflow as tf
    from spleeter.separator import create_estimator

    tf.get_logger().setLevel("ERROR")
    model_sr = int(params["sample_rate"])
    jobs = request["jobs"]
    errors: dict[int, str] = {}
    chunk = max(1, int(request["chunk_seconds"] * model_sr))
    min_len = int(MIN_SECONDS * model_sr)

    def generate():
        for j, (src, _) in enumerate(jobs):
            try:
                decoder = Decoder(request["ffmpeg"], src, model_sr)
                for job, last, valid, wave in iter_chunks(j, decoder, chunk, min_len):
                    yield {"waveform": wave, "audio_id": f"{job}:{int(last)}:{valid}"}
            except JobError as err:
                errors[j] = str(err)
            except OSError as err:
                errors[j] = f"cannot decode: {err}"

    def input_fn():
        signature = {
            "waveform": tf.TensorSpec(shape=(None, 2), dtype=tf.float32),
            "audio_id": tf.TensorSpec(shape=(), dtype=tf.string),
        }
        return tf.data.Dataset.from_generator(generate, output_signature=signature)

    estimator = create_estimator(params, MWF=False)
    done = 0
    encoder: Encoder | None = None

    def finish_until(stop: int) -> None:
        """Report every job before ``stop`` that is not reported yet (they produced no output)."""
        nonlocal done, encoder
        while done < stop:
            if encoder is not None:
                encoder.abort()
                encoder = None
            _emit(out, index=done, error=errors.get(done, "separation produced no output"))
            done += 1

    try:
        for pred in estimator.predict(input_fn, yield_single_examples=False):
            job, last, valid = pred["audio_id"].decode().split(":")
            job, last, valid = int(job), last == "1", int(valid)
            finish_until(job)
            if encoder is None:
                encoder = Encoder(request["ffmpeg"], jobs[job][1], model_sr, request["sample_rate"])
            voice = pred["vocals"][:valid].mean(axis=1)
            if voice.shape[0] < valid:
                voice = np.concatenate([voice, np.zeros(valid - voice.shape[0], np.float32)])
            encoder.write(voice)
            if last:
                try:
                    encoder.commit()
                    _emit(out, index=job, error=errors.get(job))
                except JobError as err:
                    _emit(out, index=job, error=str(err))
                encoder = None
                done = job + 1
        finish_until(len(jobs))
    except Exception as err:
        if encoder is not None:
            encoder.abort()
        _emit(out, fatal=f"Spleeter failed: {type(err).__name__}: {err}", config=False)


def main() -> int:
    # JSON lines go to the real stdout; anything TensorFlow or Spleeter prints goes to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    separate_all(json.load(sys.stdin), out)
    out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
