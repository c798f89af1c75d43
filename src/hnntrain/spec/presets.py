"""Named devices. A preset is a partial set of ``device.*`` values; explicit keys override it.

A device may also name the write-pulse technology whose published energy and duration price
its pulses (:data:`DEVICE_PULSE_PRICES`, used by ``[cost]`` when no price is given).

Measured devices follow the NeuroSim V3.0 benchmark table (Chen & Yu, IEEE Design & Test
2019): number of states, NL labels (LTP / LTD, sign dropped) and
cycle-to-cycle sigma. Where the table gives "< 1 %" we use half of it (0.5 %).
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "ideal": {"model": "linear", "levels": 256},
    "abrupt-ltd": {"model": "exponential", "nl_ltp": 2.0, "nl_ltd": 8.0, "levels": 64},
    "abrupt-ltp": {"model": "exponential", "nl_ltp": 8.0, "nl_ltd": 2.0, "levels": 64},
    "nonlinear-both": {"model": "exponential", "nl_ltp": 6.0, "nl_ltd": 6.0, "levels": 64},
    "ag-a-si": {"model": "exponential", "nl_ltp": 2.4, "nl_ltd": 4.88, "levels": 97, "c2c": 0.035},
    "taox-hfox": {"model": "exponential", "nl_ltp": 0.04, "nl_ltd": 0.63, "levels": 128, "c2c": 0.037},
    "pcmo": {"model": "exponential", "nl_ltp": 3.68, "nl_ltd": 6.76, "levels": 50, "c2c": 0.005},
    "alox-hfo2": {"model": "exponential", "nl_ltp": 1.94, "nl_ltd": 0.61, "levels": 40, "c2c": 0.05},
    "epiram": {"model": "exponential", "nl_ltp": 0.5, "nl_ltd": 0.5, "levels": 64, "c2c": 0.02},
    "hzo-fefet": {"model": "exponential", "nl_ltp": 1.75, "nl_ltd": 1.46, "levels": 32, "c2c": 0.005},
    "gst-pcm": {"model": "exponential", "nl_ltp": 0.105, "nl_ltd": 2.4, "levels": 100, "c2c": 0.015},
}

DESCRIPTIONS: dict[str, str] = {
    "ideal": "linear, 256 levels: the reference device",
    "abrupt-ltd": "gradual LTP (NL 2), abrupt LTD (NL 8), 64 levels",
    "abrupt-ltp": "abrupt LTP (NL 8), gradual LTD (NL 2), 64 levels",
    "nonlinear-both": "NL 6 in both directions, 64 levels",
    "ag-a-si": "Ag:a-Si RRAM, 97 states, NL 2.4/4.88, c2c 3.5 %",
    "taox-hfox": "TaOx/HfOx RRAM, 128 states, NL 0.04/0.63, c2c 3.7 %",
    "pcmo": "PCMO RRAM, 50 states, NL 3.68/6.76, c2c < 1 %",
    "alox-hfo2": "AlOx/HfO2 RRAM, 40 states, NL 1.94/0.61, c2c 5 %",
    "epiram": "EpiRAM, 64 states, NL 0.5/0.5, c2c 2 %",
    "hzo-fefet": "HZO FeFET, 32 states, NL 1.75/1.46, c2c < 0.5 %",
    "gst-pcm": "GST PCM, 100 states, NL 0.105/2.4, c2c 1.5 %",
}


def preset_values(name: str) -> dict[str, Any]:
    from hnntrain.spec.config import ConfigError

    key = name.strip().lower()
    if key not in PRESETS:
        raise ConfigError("device.preset", f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[key])


PULSE_PRICES: dict[str, dict[str, float]] = {
    # NeuroSim V3.0's default real device (Ag:a-Si, Jo et al., Nano Lett. 10:1297, 2010):
    # V^2 G t at 3.2 V (LTP) / 2.8 V (LTD), mid-range conductance 20.8 nS, 300 µs pulses
    "ag-a-si": {"ltp_energy_j": 6.38e-11, "ltd_energy_j": 4.88e-11, "ltp_time_s": 300e-6, "ltd_time_s": 300e-6},
    # GST phase-change synapse (Kuzum et al., Nano Lett. 12:2179, 2012): 0.675 pJ to potentiate
    # (SET), 50 pJ to depress (RESET); pulse durations are typical orders, not from that paper
    "pcm": {"ltp_energy_j": 0.675e-12, "ltd_energy_j": 50e-12, "ltp_time_s": 100e-9, "ltd_time_s": 50e-9,
            "program_energy_j": 50e-12, "program_time_s": 50e-9},
    # Li-ion WO3 ECRAM (Tang et al., IEDM 2018): 5 ns pulses, ~1 fJ projected for 100 nm x 100 nm
    "ecram": {"ltp_energy_j": 1e-15, "ltd_energy_j": 1e-15, "ltp_time_s": 5e-9, "ltd_time_s": 5e-9},
}
"""Published write-pulse prices per technology (J per pulse, s per pulse; program = one reset)."""

DEFAULT_PULSE_PRICES = "ag-a-si"
DEVICE_PULSE_PRICES: dict[str, str] = {"ag-a-si": "ag-a-si", "gst-pcm": "pcm"}
"""Device presets whose technology has its own pulse prices; others use the default."""


def pulse_prices(technology: str | None, device_preset: str | None = None) -> dict[str, float]:
    """Write-pulse prices of ``technology``, else of the device preset's technology, else of
    NeuroSim's default device."""
    from hnntrain.spec.config import ConfigError

    if technology is not None and technology not in PULSE_PRICES:
        raise ConfigError("cost.pulse_preset", f"unknown write-pulse technology {technology!r}; "
                                               f"choose one of {', '.join(PULSE_PRICES)}")
    name = technology or DEVICE_PULSE_PRICES.get((device_preset or "").lower(), DEFAULT_PULSE_PRICES)
    return dict(PULSE_PRICES[name])
