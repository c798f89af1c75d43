"""Hardware cost of training: energy, latency and area per sample, priced from a run's counters.

A run records what its hardware did (:mod:`hnntrain.physics.counters`): pulses per direction,
device reads and ADC conversions, rows written and read, program events, and the digital state
it declares (``hardware()`` of its scheme). This module puts published prices on those counts
(:class:`hnntrain.spec.config.CostConfig`); it never trains, so a finished run is re-priced
under other prices without training again. All quantities are per chip (one replica) and per
training sample. Notation: S samples trained, layers l with n_l inputs (bias row included) and
m_l outputs, N = sum_l n_l m_l synapses, d devices per synapse (2, 0 for the software
reference), b the sensing ADC bits, B the array-read (MVM) ADC bits, c columns per ADC.

    E_conv(b)   = FoM * 2^b                      (Walden figure of merit)
    t_conv(b)   = b * t_bit                      (successive approximation: one decision per bit)
    t_row(b)    = t_read + c * t_conv(b)         (one row read: devices in parallel, c columns per ADC)
    t_step      = P * (t_LTP + t_LTD)            (one write step: P pulse slots per direction, P the pulse
                                                  cap, or the device's levels when there is none)

    energy / sample:
      pulses            = [(n_LTP - r_LTP) E_LTP + (n_LTD - r_LTD) E_LTD] / S
      sensing           = (reads - extra reads) (E_read + E_conv(b)) / S
      extra_array_reads = extra reads (E_read + E_conv(b)) / S
      digital           = 2 * bits * E_bit * (synapses written) / S      (read-modify-write)
      refresh           = (programs E_prog + r_LTP E_LTP + r_LTD E_LTD) / S
      forward_backward  = sum_l d n_l m_l E_read (1 + [l > 1]) + (sum_l m_l + sum_{l>1} n_l) E_conv(B)
    latency / sample:
      forward_backward  = (2L - 1) t_row(B)                (layers in sequence, each array read once)
      update            = (write steps) t_step / S         (steps: whole-array writes in the parallel
                                                            style, rows written in the row style)
      sensing           = (rows read - extra rows read) t_row(b) / S
      extra_array_reads = extra rows read * t_row(b) / S
      refresh           = (refresh steps) (t_prog + levels * t_rewrite) / S
                                                           (t_rewrite: the pulse time of the refresh
                                                            pulses' direction, weighted by their counts)
    area / synapse:
      d (1 + extra arrays) A_cell + bits A_bit + (ADCs) 2^max(B, b) A_level / N

with r the refresh pulses (priced under refresh, not under pulses). The software reference
(``fp``, no devices) is priced as digital: each multiply-accumulate of the forward and backward
passes costs E_MAC plus reading its weight, each update a read-modify-write of every weight it
touches; its latency is not modelled (None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from hnntrain.spec.config import CostConfig
from hnntrain.spec.presets import pulse_prices

ENERGY_COMPONENTS = ("pulses", "sensing", "extra_array_reads", "digital", "refresh", "forward_backward")
"""Keys of ``energy_breakdown`` (J per sample) and ``latency_breakdown`` (s per sample)."""


@dataclass(frozen=True)
class RunCounts:
    """What one chip (replica) did over a whole run: the counters :func:`price` reads."""

    samples: float
    """Training samples the run processed."""
    weight_shapes: tuple[tuple[int, int], ...]
    """(inputs incl. bias row, outputs) of each layer."""
    devices_per_weight: int
    """2 for a device pair, 0 for the floating-point reference."""
    digital_bits: int
    """Digital state bits per synapse the scheme keeps (accumulator, estimate, buffer)."""
    extra_arrays: int
    """Pair arrays beyond the weight array (Tiki-Taka's A)."""
    senses: bool
    """The scheme reads conductances with the ADC (sets the ADC bank's resolution)."""
    adc_bits: int
    """Sensing ADC bits (0: exact reads, priced at the MVM ADC's bits)."""
    max_pulses: int
    """Pulse cap per device and update (0: none, so up to ``levels`` pulses)."""
    levels: int
    ltp: float = 0.0
    """LTP pulses (both devices, refresh included)."""
    ltd: float = 0.0
    refresh_ltp: float = 0.0
    """LTP pulses of refresh rewrites (a subset of ``ltp``)."""
    refresh_ltd: float = 0.0
    programs: float = 0.0
    """Program events (device resets)."""
    program_rows: float = 0.0
    """Rows that held at least one reset device, summed over reset operations."""
    refresh_calls: float = 0.0
    """Refresh rewrite operations (whole-array writes)."""
    reads: float = 0.0
    """Device reads (one ADC conversion each), extra array included."""
    extra_reads: float = 0.0
    rows_read: float = 0.0
    extra_rows_read: float = 0.0
    write_calls: float = 0.0
    """Write operations on the weight array(s) (refresh excluded), one per layer and update."""
    rows_written: float = 0.0
    synapses_written: float = 0.0
    """Synapses those writes addressed (rows x columns)."""
    extra_write_calls: float = 0.0
    extra_rows_written: float = 0.0
    extra_synapses_written: float = 0.0
    reconstructed: bool = False
    """True when the run predates the row/refresh counters and they were estimated."""


@dataclass(frozen=True)
class Prices:
    """The prices of one evaluation: ``CostConfig`` with the write-pulse defaults filled in."""

    ltp_energy_j: float
    ltd_energy_j: float
    ltp_time_s: float
    ltd_time_s: float
    program_energy_j: float
    program_time_s: float
    cost: CostConfig


def resolve_prices(cost: CostConfig, device_preset: str | None, levels: int) -> Prices:
    """Write-pulse prices: explicit ``cost.*`` values, else those of ``cost.pulse_preset``, else
    the device preset's own technology, else the NeuroSim default device. A program event
    (reset) defaults to a full-range pulse train: ``levels`` pulses of the dearer direction."""
    table = pulse_prices(cost.pulse_preset, device_preset)
    value = {key: getattr(cost, key) if getattr(cost, key) is not None else table.get(key)
             for key in ("ltp_energy_j", "ltd_energy_j", "ltp_time_s", "ltd_time_s", "program_energy_j",
                         "program_time_s")}
    if value["program_energy_j"] is None:
        value["program_energy_j"] = levels * max(value["ltp_energy_j"], value["ltd_energy_j"])
    if value["program_time_s"] is None:
        value["program_time_s"] = levels * max(value["ltp_time_s"], value["ltd_time_s"])
    return Prices(cost=cost, **value)


def conversion_energy(cost: CostConfig, bits: int) -> float:
    """J per ADC conversion: Walden figure of merit times 2^bits (exact reads: the MVM ADC)."""
    return cost.adc_fom_j_per_step * 2.0 ** (bits or cost.mvm_adc_bits)


def row_read_time(cost: CostConfig, bits: int) -> float:
    """s to read one row: the read pulse, then ``columns_per_adc`` conversions per ADC."""
    return cost.read_time_s + cost.columns_per_adc * (bits or cost.mvm_adc_bits) * cost.adc_time_s_per_bit


def adc_count(shapes: tuple[tuple[int, int], ...], devices_per_weight: int, arrays: int, cost: CostConfig) -> int:
    """ADCs on the chip: one per ``columns_per_adc`` device columns of each layer, per array."""
    return arrays * sum(math.ceil(devices_per_weight * out / cost.columns_per_adc) for _, out in shapes)


def _area(counts: RunCounts, cost: CostConfig, synapses: int) -> tuple[float, float]:
    """(total, bare pair array with its MVM ADCs) area per synapse, µm²."""
    bits = max(cost.mvm_adc_bits, counts.adc_bits or cost.mvm_adc_bits) if counts.senses else cost.mvm_adc_bits
    arrays = 1 + counts.extra_arrays
    adcs = adc_count(counts.weight_shapes, counts.devices_per_weight, arrays, cost)
    total = (counts.devices_per_weight * arrays * cost.cell_area_um2 + counts.digital_bits * cost.digital_bit_area_um2
             + adcs * cost.adc_area_um2_per_level * 2.0 ** bits / synapses)
    bare_adcs = adc_count(counts.weight_shapes, 2, 1, cost)
    base = 2 * cost.cell_area_um2 + bare_adcs * cost.adc_area_um2_per_level * 2.0 ** cost.mvm_adc_bits / synapses
    return total, base


def price(counts: RunCounts, cost: CostConfig, device_preset: str | None = None) -> dict[str, Any]:
    """Energy and latency per sample, area per synapse, and their breakdowns (module docstring)."""
    p = resolve_prices(cost, device_preset, counts.levels)
    s = max(counts.samples, 1.0)
    shapes = counts.weight_shapes
    synapses = sum(n * m for n, m in shapes)
    backward = shapes[1:]  # errors propagate back through every layer but the first
    energy = dict.fromkeys(ENERGY_COMPONENTS, 0.0)
    latency: dict[str, float] | None = dict.fromkeys(ENERGY_COMPONENTS, 0.0)
    energy["digital"] = 2 * counts.digital_bits * cost.digital_access_j_per_bit * counts.synapses_written / s
    if counts.devices_per_weight == 0:  # the software reference: digital MACs, no array, no latency model
        macs = synapses + sum(n * m for n, m in backward)
        energy["forward_backward"] = macs * (cost.digital_mac_j + counts.digital_bits * cost.digital_access_j_per_bit)
        latency = None
    else:
        read = cost.read_energy_j
        sense = read + conversion_energy(cost, counts.adc_bits)
        energy["pulses"] = ((counts.ltp - counts.refresh_ltp) * p.ltp_energy_j
                            + (counts.ltd - counts.refresh_ltd) * p.ltd_energy_j) / s
        energy["sensing"] = (counts.reads - counts.extra_reads) * sense / s
        energy["extra_array_reads"] = counts.extra_reads * sense / s
        energy["refresh"] = (counts.programs * p.program_energy_j + counts.refresh_ltp * p.ltp_energy_j
                             + counts.refresh_ltd * p.ltd_energy_j) / s
        conversions = sum(m for _, m in shapes) + sum(n for n, _ in backward)
        cell_reads = counts.devices_per_weight * (synapses + sum(n * m for n, m in backward))
        energy["forward_backward"] = cell_reads * read + conversions * conversion_energy(cost, cost.mvm_adc_bits)
        step = (counts.max_pulses or counts.levels) * (p.ltp_time_s + p.ltd_time_s)  # no cap: a full range
        if cost.update_style == "parallel":
            steps, refresh_steps = counts.write_calls + counts.extra_write_calls, counts.refresh_calls
        else:
            steps, refresh_steps = counts.rows_written + counts.extra_rows_written, counts.program_rows
        sense_row = row_read_time(cost, counts.adc_bits)
        latency["forward_backward"] = (2 * len(shapes) - 1) * row_read_time(cost, cost.mvm_adc_bits)
        latency["pulses"] = steps * step / s
        latency["sensing"] = (counts.rows_read - counts.extra_rows_read) * sense_row / s
        latency["extra_array_reads"] = counts.extra_rows_read * sense_row / s
        rewrites = counts.refresh_ltp + counts.refresh_ltd
        share_ltp = counts.refresh_ltp / rewrites if rewrites else 0.5  # the rewrite's (gradual) direction
        rewrite = counts.levels * (share_ltp * p.ltp_time_s + (1 - share_ltp) * p.ltd_time_s)
        latency["refresh"] = refresh_steps * (p.program_time_s + rewrite) / s
    area, base = _area(counts, cost, synapses)
    return {
        "energy_j_per_sample": sum(energy.values()),
        "latency_s_per_sample": sum(latency.values()) if latency is not None else None,
        "area_um2_per_synapse": area,
        "area_overhead_um2_per_synapse": area - base,
        "energy_breakdown": energy,
        "latency_breakdown": latency,
        "prices": {"ltp_energy_j": p.ltp_energy_j, "ltd_energy_j": p.ltd_energy_j, "ltp_time_s": p.ltp_time_s,
                   "ltd_time_s": p.ltd_time_s, "program_energy_j": p.program_energy_j,
                   "program_time_s": p.program_time_s},
        "counters": "reconstructed" if counts.reconstructed else "recorded",
    }


# -- reading a result.json ------------------------------------------------------------------------

MNIST_SHAPE = (784, 10)
"""Input and output sizes assumed for runs that predate ``hardware.weight_shapes`` (MNIST)."""


def _shapes(result: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
    shapes = result.get("hardware", {}).get("weight_shapes")
    if shapes:
        return tuple((int(n), int(m)) for n, m in shapes)
    model = result["config"]["model"]
    sizes = [MNIST_SHAPE[0], *model["hidden"], MNIST_SHAPE[1]]
    extra = 1 if model.get("bias", True) else 0
    return tuple((n + extra, m) for n, m in zip(sizes[:-1], sizes[1:]))


def counts_from_result(result: Mapping[str, Any]) -> RunCounts:
    """The counters of a ``result.json`` (or a stored result). Runs that predate the cost
    counters are reconstructed from their epoch records: every update writes every row (an
    upper bound), refresh pulses are priced as update pulses, MNIST layer sizes."""
    config, hardware = result["config"], result.get("hardware", {})
    shapes = _shapes(result)
    common = dict(weight_shapes=shapes, devices_per_weight=int(hardware.get("devices_per_weight", 2)),
                  digital_bits=int(hardware.get("digital_bits_per_synapse", 0) or 0),
                  extra_arrays=int(hardware.get("extra_arrays", 0) or 0), senses=bool(hardware.get("sensing")),
                  adc_bits=int(config["sensing"]["adc_bits"]), max_pulses=int(config["scheme"]["max_pulses"]),
                  levels=int(config["device"]["levels"]))
    counters = result.get("counters")
    if counters is not None:
        known = {f.name for f in fields(RunCounts)}
        return RunCounts(samples=float(result.get("samples") or 0), **common,
                         **{k: float(v) for k, v in counters.items() if k in known})
    epochs = result.get("epochs") or []
    samples = sum(e["pulses"]["total"] / e["pulses"]["per_sample"] for e in epochs if e["pulses"]["per_sample"])
    if not samples:
        per_epoch = config["train"]["samples"] or 60000
        samples = per_epoch * len(epochs)
    updates = samples / config["train"]["batch_size"]
    rows = sum(n for n, _ in shapes)
    devices = common["devices_per_weight"] * sum(n * m for n, m in shapes) or 1
    reads = sum(e["senses"] for e in epochs)
    programs = sum(e["programs"] for e in epochs)
    return RunCounts(samples=samples, **common, reconstructed=True,
                     ltp=sum(e["pulses"]["ltp_plus"] + e["pulses"]["ltp_minus"] for e in epochs),
                     ltd=sum(e["pulses"]["ltd_plus"] + e["pulses"]["ltd_minus"] for e in epochs),
                     programs=programs, program_rows=programs * rows / devices, reads=reads,
                     rows_read=reads * rows / devices, write_calls=updates * len(shapes),
                     rows_written=updates * rows, synapses_written=updates * sum(n * m for n, m in shapes))


def price_result(result: Mapping[str, Any], cost: CostConfig) -> dict[str, Any]:
    """:func:`price` of a ``result.json`` (or a stored result) under the prices ``cost``."""
    return price(counts_from_result(result), cost, result["config"]["device"].get("preset"))
