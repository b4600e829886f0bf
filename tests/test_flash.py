"""`ondevice flash`: QEMU boards keep the image as their emulated flash and boot it; the real-board port builds
and fails cleanly without a probe; unknown boards and missing images give one-line errors with hints."""
from __future__ import annotations

import json

import pytest

from _firmware_support import REPO
from conftest import require_tool
from ondevice.cli import main
from ondevice.errors import ConfigError, TransportError

TESTMODEL = REPO / "firmware" / "core" / "testmodel"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A private cache: flashing in a test must not replace the user's emulated flash image."""
    monkeypatch.setenv("ONDEVICE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cli_flash_qemu_then_profile_boots_the_flashed_image(cache, tmp_path, capsys):
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    from ondevice.mcu.firmware import flashed_image
    assert main(["flash", "--board", "qemu-mps2-an386"]) == 0
    img = flashed_image("qemu-mps2-an386")
    assert img is not None and img.is_relative_to(cache)
    assert "booted under QEMU" in capsys.readouterr().err
    from ondevice.mcu.firmware import flashed_info
    info = flashed_info("qemu-mps2-an386")
    assert info["hello"]["board"] == "qemu-mps2-an386" and info["boot"]["banner"].endswith("testmodel")
    # the CLI, with no elf= in the URL: QEMU boots the flashed image
    out = tmp_path / "prof"
    assert main(["profile", "--device", "qemu://mps2-an386", str(TESTMODEL), "--runs", "3", "--warmup", "1",
                 "--out", str(out)]) == 0
    r = json.loads((out / "profile.json").read_text())
    assert r["status"] == "ok" and r["device"]["builtin_model"] == "testmodel" and r["runs"] == 3
    assert r["metrics"]["instructions_per_inference"]["source"] == "emulated"
    assert r["metrics"]["energy_per_inference_mj"]["source"] == "modelled"


def test_qemu_url_without_an_image_says_how_to_flash(cache):
    require_tool("qemu-system-arm")
    from ondevice.profiling.transports import open_transport
    with pytest.raises(ConfigError) as e:
        open_transport("qemu://mps3-an547")
    assert "ondevice flash --board qemu-mps3-an547" in e.value.hint
    with pytest.raises(ConfigError) as e:
        open_transport("qemu://mps9-an999?elf=x.elf")
    assert "mps2-an386" in e.value.hint


def test_unknown_board_is_a_config_error_with_suggestion(capsys):
    assert main(["flash", "--board", "qemu-mps2-an38"]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "unknown board" in err and "qemu-mps2-an386" in err


def test_real_board_builds_and_fails_cleanly_without_a_probe(cache):
    """nucleo-f446re: builds here, not run on hardware. With no probe attached, pyocd finds none: one clear error."""
    require_tool("arm-none-eabi-gcc")
    from elftools.elf.elffile import ELFFile

    from ondevice.flash import flash
    from ondevice.mcu.firmware import build_firmware, firmware_sizes
    elf = build_firmware("nucleo-f446re")
    with open(elf, "rb") as f:
        e = ELFFile(f)
        vec = e.get_section_by_name(".isr_vector")
        assert vec["sh_addr"] == 0x0800_0000  # the vector table is where the STM32 boots from
        assert 0x0800_0000 <= e.header["e_entry"] < 0x0808_0000
        assert e.get_section_by_name(".stack")["sh_addr"] >= 0x2000_0000
    sizes = firmware_sizes(elf)
    assert 0 < sizes["flash_bytes"] < 512 * 1024 and sizes["static_ram_bytes"] + sizes["stack_bytes"] < 128 * 1024
    assert elf.with_name("firmware.hex").is_file()
    with pytest.raises(TransportError) as err:
        flash("nucleo-f446re", elf=elf)
    assert "no debug probe" in err.value.message and "--probe" in err.value.hint


def test_qemu_url_names_the_firmware_the_profiler_builds_unless_it_names_an_image():
    from ondevice.profiling.transports import FirmwareTarget
    from ondevice.profiling.transports.qemu import QemuTransport
    assert QemuTransport.firmware_for("qemu://mps2-an386") == FirmwareTarget("qemu-mps2-an386", "opt")
    assert QemuTransport.firmware_for("qemu://mps3-an547?variant=ref") == FirmwareTarget("qemu-mps3-an547", "ref")
    assert QemuTransport.firmware_for("qemu://mps2-an386?elf=a.elf") is None


@pytest.mark.hardware
def test_profile_on_a_flashed_board(request, tmp_path):
    """On a real board flashed with the fixture model (`ondevice flash --board nucleo-f446re`), run with
    `pytest -m hardware --device serial:///dev/ttyACM0`: the checks the QEMU tests make, on silicon."""
    import numpy as np

    from _firmware_support import fixture_model_reference
    from ondevice.profiling.profiler import profile
    x = np.arange(-64, 64, 8, dtype=np.int8).reshape(1, 16)
    r = profile(TESTMODEL, request.config.getoption("--device"), runs=10, warmup=2, out=tmp_path, inputs=[x])
    assert r["status"] == "ok" and r["timings"]["unit"] == "cycles"
    assert r["outputs"][0]["values"] == fixture_model_reference(x).tolist()
    assert 0 < r["memory"]["stack_high_water_bytes"] < r["memory"]["stack_total_bytes"]
