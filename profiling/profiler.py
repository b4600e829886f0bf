"""``profile()`` end to end: one device (or every attached one) through handshake, model load or select, inputs,
warm-ups and timed runs, outputs, memory and per-op timings, then ``profile.json`` and ``report.html``.

Finished runs are written atomically as they arrive, so a later failure (a reset, a timeout) never loses them.
For an mcu artifact on an emulated board (:meth:`~ondevice.profiling.transports.Transport.firmware_for`), the
firmware is built here (:func:`ondevice.mcu.firmware.build_firmware`) and handed to the transport; opening a
device URL never builds anything.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice import log
from ondevice.errors import ConfigError, DeviceError, OndeviceError, ProtocolError
from ondevice.fsutil import check_out, write_json_atomic
from ondevice.profiling import protocol as P
from ondevice.profiling.artifact import Artifact
from ondevice.profiling.inputs import make_audio, make_inputs
from ondevice.profiling.session import DEFAULT_RETRIES, DEFAULT_RUN_TIMEOUT, DeviceSession
from ondevice.profiling.transports import Transport, open_transport, transport_class

MODES = {"model": P.Mode.MODEL, "frontend+model": P.Mode.FRONTEND_MODEL, "frontend": P.Mode.FRONTEND}
FEATURE_SPEC = {"name": "features", "dtype": "uint16", "shape": [49, 40]}


@dataclass
class ProfileOptions:
    """How to profile: the run counts, what feeds the model, the link's patience and what to measure power with."""

    runs: int = 100
    warmup: int = 10
    power: str | None = None
    board: str | None = None
    inputs: Sequence[np.ndarray] | dict | None = None
    seed: int = 0
    timeout: float | None = None
    retries: int = DEFAULT_RETRIES
    run_timeout: float = DEFAULT_RUN_TIMEOUT
    mode: str = "model"
    audio: np.ndarray | None = None


def profile(artifact: str | Path, device, runs: int = 100, warmup: int = 10, power: str | None = None,
            board: str | None = None, out: str | Path | None = "profile", *, inputs: Sequence[np.ndarray] | None = None,
            seed: int = 0, timeout: float | None = None, retries: int = DEFAULT_RETRIES,
            run_timeout: float = DEFAULT_RUN_TIMEOUT, report: bool = True, mode: str = "model",
            audio: np.ndarray | None = None) -> dict:
    """Profile ``artifact`` on the device at URL ``device`` (or ``"all"``); returns the profile dict.

    ``mode``: ``model`` (the default: random inputs from ``seed``, or ``inputs``), ``frontend+model`` (int16
    ``audio``, default a seeded 1 s clip, through the device's audio frontend and the model; both are timed) or
    ``frontend`` (the frontend alone; output is the feature map). ``device`` may also be an open
    :class:`~ondevice.profiling.transports.Transport` (scripts and tests inject one; it is left open).
    Writes ``out/profile.json`` (and ``out/report.html`` when ``report``) unless ``out`` is None. The dict has
    ``device``, ``artifact``, ``runs``, ``metrics`` (each ``{"value", "unit", "source"}``) and the raw timings.
    """
    opts = ProfileOptions(runs=runs, warmup=warmup, power=power, board=board, inputs=inputs, seed=seed,
                          timeout=timeout, retries=retries, run_timeout=run_timeout, mode=mode, audio=audio)
    if runs < 1 or warmup < 0:
        raise ConfigError("runs must be >= 1 and warmup >= 0", "e.g. --runs 100 --warmup 10")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}", f"use one of: {', '.join(MODES)}")
    if out is not None:
        check_out(out)
    if device == "all":
        return profile_all(artifact, opts, out=out, report=report)
    art = Artifact.load(artifact)
    out = Path(out) if out is not None else None
    url = device if isinstance(device, str) else device.url
    result: dict = {"schema": "ondevice-profile/1", "status": "running", "device": {"url": url},
                    "artifact": art.describe(), "runs": 0, "runs_requested": runs, "warmup": warmup, "metrics": {},
                    "timings": {"unit": None, "values": []}, "started_utc": _utc()}
    session_box: list[DeviceSession] = []
    try:
        result["mode"] = mode
        _profile_into(result, art, device, opts, out, session_box)
        result["status"] = "ok"
    except OndeviceError as e:
        result["status"] = "failed"
        result["error"] = {"type": type(e).__name__, "message": e.message, "hint": e.hint}
        raise
    except KeyboardInterrupt:
        result["status"] = "interrupted"
        kept = f"{result['runs']} runs kept in {out / 'profile.json'}" if out is not None else f"{result['runs']} runs"
        raise KeyboardInterrupt(kept) from None
    finally:
        if result["status"] != "ok":
            _drop_provisional(result)
        s = session_box[0] if session_box else None
        if s is not None:
            result["link"] = {"retries": s.retried, "stale_frames": s.link.stale, "corrupt_frames": s.corrupt,
                              "dropped_frames": s.link.dec.dropped_total, "device_logs": s.link.logs[-20:]}
        result["finished_utc"] = _utc()
        if out is not None:
            _write(result, out, report)
    return result


def _drop_provisional(result: dict) -> None:
    """A device that reports its own flash image size (firmware, not the host sim) would have replaced the model
    file's size at the end; an unfinished profile leaves the figure out rather than change its meaning."""
    flash, dev = result["metrics"].get("flash_bytes"), result["device"]
    if (flash and flash.get("note") == "model file size" and dev.get("board_kind") != "host"
            and "MEMORY_STATS" in dev.get("capabilities", [])):
        del result["metrics"]["flash_bytes"]


def _utc() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(result: dict, out: Path, report: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "profile.json", result)
    if report:
        from ondevice.profiling.report import write_html
        write_html(result, out / "report.html")


def _finish_metrics(result: dict, board_prof: dict, clock_hz, memory=None, power_res=None, stats=None) -> None:
    from ondevice.profiling.metrics import compute_metrics
    tim = result["timings"]
    result["metrics"] = compute_metrics(timings=tim["values"], unit=tim["unit"] or "us", clock_hz=clock_hz,
                                        board=board_prof, memory=memory,
                                        model_bytes=result["artifact"].get("bytes"), power=power_res,
                                        device_stats=stats)


# -- opening the device ------------------------------------------------------------------------------------------

def open_device(url: str, artifact: str | Path) -> Transport:
    """Open ``url`` to profile ``artifact``: an emulated board gets firmware built for an mcu artifact (a .tflite
    boots as its cached mcu build); a sim gets an export folder as its built-in model."""
    cls = transport_class(url)
    if cls is None:
        return open_transport(url)  # not a device URL: open_transport says so
    url = cls.url_for_artifact(url, artifact)
    target = cls.firmware_for(url)
    firmware = None
    if target is not None:
        from ondevice.export.mcu import mcu_artifact
        mcu = Path(mcu_artifact(artifact))
        if mcu.is_dir():
            from ondevice.mcu.firmware import build_firmware
            firmware = build_firmware(target.board, mcu, variant=target.variant)
    return open_transport(url, firmware=firmware)


# -- one device, step by step ------------------------------------------------------------------------------------

def _profile_into(result: dict, art: Artifact, device, opts: ProfileOptions, out: Path | None,
                  session_box: list) -> None:
    """Fill ``result`` from the device (a URL, opened and closed here, or an injected open transport)."""
    from ondevice.profiling.power import open_monitor
    owned = not isinstance(device, Transport)  # an injected, already-open transport stays the caller's
    t = open_device(device, art.path) if owned else device
    monitor = None
    try:
        s = DeviceSession(t, timeout=opts.timeout, retries=opts.retries, run_timeout=opts.run_timeout)
        session_box.append(s)
        info = s.hello()
        board_prof, clock_hz = _describe_device(result, info, t, opts.board)
        in_specs, out_specs = _load_model(result, s, t, art, device)
        _send_inputs(result, s, art, in_specs, opts)
        # power: an explicit monitor, else the transport's own (adb battery), else the board model
        monitor = open_monitor(opts.power) if opts.power else t.power_monitor()
        power_res = _timed_runs(result, s, monitor, board_prof, clock_hz, opts, out)
        result["outputs"] = _outputs(s, out_specs, opts.mode)
        memory = _memory(s)
        result["memory"] = memory
        _op_timings(result, s, opts.mode)
        stats = t.device_stats()
        if stats:
            result["device_stats"] = stats
        if not opts.power:  # the app's own battery sampling covers exactly the timed region: prefer it to polling
            power_res = _phone_power(s.link.logs, monitor, power_res)
        _finish_metrics(result, board_prof, clock_hz, memory=memory, power_res=power_res, stats=stats)
        result["board"] = {k: v for k, v in board_prof.items()}
    finally:
        if monitor is not None:
            monitor.close()
        if owned:
            t.close()


def _describe_device(result: dict, info: P.DeviceInfo, t: Transport, board: str | None) -> tuple[dict, object]:
    """``result["device"]`` from HELLO and the board profile; returns (board profile, clock Hz)."""
    from ondevice.profiling.power import load_board
    board_name = board or (info.board if info.board else None) or t.board or "host"
    try:
        board_prof = load_board(board_name)
    except ConfigError:
        log.warn(f"no board profile {board_name!r}; energy cannot be modelled (pass --board)")
        board_prof = {"name": board_name, "kind": "hardware"}
    result["device"].update({"name": info.device, "runtime": info.runtime, "board": board_name,
                             "board_kind": board_prof.get("kind"), "protocol_version": info.version,
                             "capabilities": [c.name for c in P.Caps if info.caps & c],
                             "timer_units": info.units(), "clock_hz": info.clock_hz or None,
                             "ram_bytes": None if info.ram_bytes == P.UNKNOWN_U32 else info.ram_bytes,
                             "flash_bytes": None if info.flash_bytes == P.UNKNOWN_U32 else info.flash_bytes,
                             "max_payload": info.max_payload})
    if board_prof.get("ram_bytes") and result["device"]["ram_bytes"] is None:
        result["device"]["ram_bytes"] = board_prof["ram_bytes"]["value"]
    return board_prof, info.clock_hz or (board_prof.get("clock_hz") or {}).get("value")


def _load_model(result: dict, s: DeviceSession, t: Transport, art: Artifact, device) -> tuple[list, list]:
    """The model: uploaded when the device can take it, else a built-in one by name. Returns (inputs, outputs)."""
    info = s.info
    if art.path.is_file():  # e.g. adb: the app also reads the manifest from disk
        t.stage(art.path)
    if art.data and info.has(P.Caps.LOAD_MODEL):
        log.info(f"[{result['device']['url']}] uploading {art.name} ({len(art.data)} bytes)")
        s.load_model(art.data, art.fmt, art.model)
    elif info.has(P.Caps.BUILTIN_MODELS):
        sel = s.select_builtin(name=art.model)
        result["device"]["builtin_model"] = sel["name"]
    else:
        raise ConfigError(f"{device} can neither load {art.name} nor has it built in",
                          "flash firmware with this model (ondevice flash) or use a device that loads models")
    mi = s.model_info()
    if art.data and mi["sha256"] != "00" * 32 and mi["sha256"] != art.sha256:
        raise DeviceError(f"the model on the device (sha256 {mi['sha256'][:12]}) is not {art.name} "
                          f"({art.sha256[:12]})", "flash or upload the artifact you are profiling")
    n_in = mi["n_inputs"]
    in_specs, out_specs = mi["tensors"][:n_in], mi["tensors"][n_in:]
    result["model_info"] = {"name": mi["name"], "model_bytes": mi["model_bytes"],
                            "arena_bytes": None if mi["arena_bytes"] == P.UNKNOWN_U32 else mi["arena_bytes"],
                            "inputs": in_specs, "outputs": out_specs}
    return in_specs, out_specs


def _send_inputs(result: dict, s: DeviceSession, art: Artifact, in_specs: list, opts: ProfileOptions) -> None:
    """The audio clip (frontend modes) or the model's input tensors, recorded by seed and SHA-256."""
    mode = MODES[opts.mode]
    if mode != P.Mode.MODEL:
        if not s.info.has(P.Caps.FRONTEND):
            raise ConfigError(f"{result['device']['url']} has no on-device audio frontend",
                              "profile the model alone (mode model)")
        pcm = np.asarray(opts.audio if opts.audio is not None else make_audio(opts.seed), dtype="<i2")
        s.set_mode(mode)
        s.set_input(P.AUDIO_INDEX, pcm.tobytes())
        result["inputs"] = {"audio_sha256": hashlib.sha256(pcm.tobytes()).hexdigest(),
                            "seed": None if opts.audio is not None else opts.seed}
        return
    inputs = opts.inputs
    names = [i.get("name") for i in art.manifest.get("inputs") or []]  # the model's own input names
    if isinstance(inputs, dict):  # {name: array}: ordered as the manifest lists the inputs
        missing = [n for n in names if n not in inputs]
        if missing or not names:
            raise ConfigError(f"inputs given by name, but {', '.join(missing) or 'the manifest names none'} "
                              "missing", f"the model's inputs are {names}")
        inputs = [inputs[n] for n in names]
    arrays = list(inputs) if inputs is not None else make_inputs(in_specs, opts.seed)
    if len(arrays) != len(in_specs):
        raise ConfigError(f"{len(arrays)} inputs given, the model takes {len(in_specs)}", "check the input list")
    for i, (a, spec) in enumerate(zip(arrays, in_specs)):
        raw = np.ascontiguousarray(a, dtype=spec["dtype"]).tobytes()
        if len(raw) != P.tensor_nbytes(spec):
            raise ConfigError(f"input {i} has {len(raw)} bytes, the model wants {P.tensor_nbytes(spec)}",
                              f"shape {spec['shape']} dtype {spec['dtype']}")
        s.set_input(i, raw)
    result["inputs"] = {"seed": None if inputs is not None else opts.seed,
                        "sha256": [hashlib.sha256(np.ascontiguousarray(a, dtype=sp["dtype"]).tobytes())
                                   .hexdigest() for a, sp in zip(arrays, in_specs)]}
    if len(names) == len(arrays):
        result["inputs"]["names"] = names


def _timed_runs(result: dict, s: DeviceSession, monitor, board_prof: dict, clock_hz, opts: ProfileOptions,
                out: Path | None) -> dict | None:
    """The warm-ups and timed runs in batches the device can hold, each batch written as it arrives; returns the
    power measured over them (None without a monitor)."""
    from ondevice.profiling.power import merge_power
    runs, info = opts.runs, s.info
    power_res = None
    batch = max(1, min(runs, info.max_runs or runs))
    done = 0
    with log.progress(f"{info.device} runs", runs) as advance:
        while done < runs:
            n = min(batch, runs - done)
            if monitor is not None:
                monitor.start()
            unit, ts = s.run(n, opts.warmup if done == 0 else 0)
            if monitor is not None:
                res = monitor.stop()
                if res:
                    power_res = res if power_res is None else merge_power(power_res, res)
            tim = result["timings"]
            if tim["unit"] not in (None, unit):
                raise ProtocolError(f"the device changed timer unit from {tim['unit']} to {unit}", "a device bug")
            tim["unit"] = unit
            tim["values"].extend(ts)
            done += n
            result["runs"] = done
            advance(n)
            _finish_metrics(result, board_prof, clock_hz, power_res=power_res)
            if out is not None:  # finished runs survive a later failure
                _write(result, out, report=False)
    return power_res


def _outputs(s: DeviceSession, out_specs: list, mode: str) -> list[dict]:
    """The outputs (or the feature map in frontend mode) by name, dtype, shape and SHA-256; small ones in full."""
    outputs = []
    if not s.info.has(P.Caps.GET_OUTPUT):
        return outputs
    wanted = [(P.AUDIO_INDEX, FEATURE_SPEC)] if MODES[mode] == P.Mode.FRONTEND else list(enumerate(out_specs))
    for k, spec in wanted:
        raw = s.get_output(k)
        if len(raw) != P.tensor_nbytes(spec):
            raise ProtocolError(f"output {k} has {len(raw)} bytes, expected {P.tensor_nbytes(spec)}", "a device bug")
        arr = np.frombuffer(raw, dtype=spec["dtype"]).reshape(spec["shape"])
        o = {"name": spec["name"], "dtype": spec["dtype"], "shape": spec["shape"],
             "sha256": hashlib.sha256(raw).hexdigest()}
        if arr.size <= 4096:
            o["values"] = arr.reshape(-1).tolist()
        outputs.append(o)
    return outputs


def _memory(s: DeviceSession) -> dict | None:
    memory = s.get_memory() if s.info.has(P.Caps.MEMORY_STATS) else None
    if memory is not None:  # an agent may say where peak_ram_bytes comes from (PROTOCOL.md, GET_MEMORY)
        said = [ln.split("peak_ram_source=", 1)[1] for ln in s.link.logs if "peak_ram_source=" in ln]
        if said:
            memory["peak_ram_source"] = said[-1]
    return memory


def _op_timings(result: dict, s: DeviceSession, mode: str) -> None:
    if not s.info.has(P.Caps.OP_TIMINGS):
        return
    try:  # optional figures: a device that cannot give them does not fail the profile
        unit, ops = s.get_op_timings()
        result["op_timings"] = {"unit": unit, "ops": ops}
    except DeviceError as e:
        if MODES[mode] == P.Mode.FRONTEND:  # no model ran, so no ops: expected, not a problem
            result["op_timings"] = {"unit": None, "ops": []}
        else:
            log.warn(f"no per-op timings: {e.message}")
            result["op_timings_error"] = e.message


def _phone_power(logs: list[str], monitor, power_res: dict | None) -> dict | None:
    """The phone app's battery figure from its LOG lines when it sent one (minus the idle baseline)."""
    from ondevice.profiling.power import battery_from_logs, subtract_baseline
    phone = battery_from_logs(logs)
    if phone is not None:
        return subtract_baseline(phone, getattr(monitor, "baseline_mw", None))
    if any("charging=true" in line for line in logs):
        log.warn("the phone was charging during the runs: battery readings say nothing; energy is modelled")
        return None if power_res and "battery" in str(power_res.get("monitor")) else power_res
    return power_res


# -- every attached device ---------------------------------------------------------------------------------------

def profile_all(artifact, opts: ProfileOptions, *, out, report: bool) -> dict:
    """Profile every attached device that can run ``artifact`` in parallel; one combined profile and report."""
    from ondevice.profiling.devices import urls_for_all
    urls = urls_for_all(artifact)
    if not urls:
        raise ConfigError("no attached device can run this artifact", "run `ondevice devices` to see what is attached")
    if opts.power and len(urls) > 1:
        raise ConfigError("--power measures one device, --device all found several",
                          "profile the device on the power monitor on its own (--device URL --power ...)")
    out = Path(out) if out is not None else None

    def failure(url: str, e: OndeviceError) -> dict:
        return {"device": {"url": url}, "status": "failed", "runs": 0, "metrics": {},
                "error": {"type": type(e).__name__, "message": e.message, "hint": e.hint}}

    # opened one after another: opening may build firmware or start services that share folders and registries
    opened: dict[str, object] = {}
    for url in urls:
        try:
            opened[url] = open_device(url, artifact)
        except OndeviceError as e:
            opened[url] = failure(url, e)

    def one(url: str) -> dict:
        t = opened[url]
        if isinstance(t, dict):
            return t
        sub = out / _slug(url) if out is not None else None
        try:
            return profile(artifact, t, runs=opts.runs, warmup=opts.warmup, power=opts.power, board=opts.board,
                           out=sub, seed=opts.seed, timeout=opts.timeout, retries=opts.retries,
                           run_timeout=opts.run_timeout, report=report, mode=opts.mode, audio=opts.audio)
        except OndeviceError as e:
            return failure(url, e)
        finally:
            t.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(urls)) as ex:
        results = dict(zip(urls, ex.map(one, urls)))
    combined = {"schema": "ondevice-profile-all/1", "artifact": str(artifact), "devices": list(results.values()),
                "status": "ok" if all(r.get("status") == "ok" for r in results.values()) else "partial"}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "profile.json", combined)
        if report:
            from ondevice.profiling.report import write_html_all
            write_html_all(combined, out / "report.html")
    return combined


def _slug(url: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in url.replace("://", "_")).strip("_")
