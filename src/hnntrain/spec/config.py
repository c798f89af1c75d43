"""Run configuration: frozen dataclasses and their range checks (the leaf of the package).

A run is fully described by one :class:`RunConfig`. Every field documents its unit, its range
and, for device parameters, its *variability class*: ``nominal`` (the same for every device),
``d2d`` (drawn once per device from the run seed) or ``c2c`` (drawn anew at every pulse).

Reading TOML files and ``--set`` overrides, and checking scheme names and options, live in
:mod:`hnntrain.io.resolve`; this module imports nothing from hnntrain.

Why one module of ~450 lines: every section's dataclass is here so that the field docstrings
are the single source of ``hnntrain config keys`` and docs/config.md; most of its length is
those docstrings (unit, range, default and source of every key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the fix."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True)
class DeviceConfig:
    """Conductance response of every device in the arrays."""

    preset: str | None = None
    """Named device (see ``hnntrain device list``); explicit keys below override its values."""
    model: str = "exponential"
    """Response model: ``exponential`` (NeuroSim), ``linear`` (constant step) or ``table``."""
    nl_ltp: float = 1.0
    """Nonlinearity label of LTP (potentiation), NeuroSim convention, 0..9; nominal. Sign ignored."""
    nl_ltd: float = 1.0
    """Nonlinearity label of LTD (depression), NeuroSim convention, 0..9; nominal. Sign ignored."""
    a_ltp: float | None = None
    """LTP curvature A in pulses (> 0); nominal. When set, overrides ``nl_ltp``."""
    a_ltd: float | None = None
    """LTD curvature A in pulses (> 0); nominal. When set, overrides ``nl_ltd``."""
    levels: int = 64
    """Pulses that take a device from g_min to g_max (NeuroSim Pmax), integer >= 2; nominal."""
    g_min: float = 1.0
    """Lowest conductance, microsiemens, >= 0; nominal (see ``d2d_g`` for its spread)."""
    g_max: float = 10.0
    """Highest conductance, microsiemens, > g_min; nominal (see ``d2d_g`` for its spread)."""
    c2c: float = 0.0
    """Cycle-to-cycle noise sigma as a fraction of (g_max - g_min), 0..1; c2c. Additive mode:
    sigma * range * sqrt(n) per update of n pulses (NeuroSim). Multiplicative mode: the
    realized change is scaled by (1 + sigma * xi / sqrt(n))."""
    c2c_mode: str = "additive"
    """``additive`` (NeuroSim) or ``multiplicative`` cycle-to-cycle noise."""
    d2d_nl: float = 0.0
    """Device-to-device sigma of the NL labels, in NL units, >= 0; d2d."""
    d2d_g: float = 0.0
    """Device-to-device sigma of g_min and g_max, fraction of the nominal range, 0..0.5; d2d."""
    table: str | None = None
    """CSV of measured conductance versus pulse number (``model = "table"``): columns
    ``direction`` (LTP/LTD), ``pulse``, ``conductance`` (microsiemens)."""


@dataclass(frozen=True)
class PairConfig:
    """How two devices make one weight: w = scale * (G+ - G-)."""

    w_max: float = 1.0
    """Weight when one device is at g_max and the other at g_min (> 0); sets
    scale = w_max / (g_max - g_min)."""
    g_ref_fraction: float = 0.5
    """Common-mode level at initialization, fraction of the range, 0..1: the pair starts at
    G+/G- = g_ref_fraction*range + g_min +/- w/(2*scale), clipped into bounds."""
    init_scale: float = 1.0
    """Initial weights are uniform in +/- init_scale/sqrt(fan_in), clipped to +/- w_max; >= 0."""


@dataclass(frozen=True)
class SensingConfig:
    """How a controller reads conductances. Schemes see sensed values only."""

    adc_bits: int = 4
    """ADC resolution in bits over [g_min, g_max], 1..16; 0 means exact (no quantization).
    Default 4 with ``every`` 100: the inaccurate, infrequent sensing CRUS was designed for
    (Lee et al., arXiv 2111.07113); every command starts from these same defaults."""
    read_noise: float = 0.0
    """Gaussian read-noise sigma as a fraction of the range, >= 0; drawn at every read."""
    every: int = 100
    """Sensing interval K: the controller re-reads its arrays every K training samples, >= 1."""
    track: bool = False
    """Between senses, propagate the estimate through the nominal device model for every pulse
    issued (True) or keep the last reading (False)."""


@dataclass(frozen=True)
class SchemeConfig:
    """The weight-update scheme and the pulse hardware it drives."""

    name: str = "sgd"
    """Scheme name (``hnntrain schemes`` lists them)."""
    max_pulses: int = 0
    """Pulses a device may receive in one update, integer >= 0; 0 (default): up to a full sweep
    (``device.levels``), i.e. no clipping. A crossbar's pulse driver limits the pulses it fires
    per write cycle, which is time: a larger count takes more cycles (pulses/sample reports the
    cost), it is not dropped. A value >= 1 models a driver that cannot repeat cycles and clips
    each device's count per update: that clips the large requests and not the small ones, a
    bias (accumulating schemes keep the clipped part owed; open-loop schemes lose it)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Scheme-specific options (``scheme.<option>`` keys), checked by the scheme itself."""


@dataclass(frozen=True)
class ControllerConfig:
    """What the controller of a model-based scheme (CRUS, nonlinearity_aware, refresh) believes
    about the hardware, where it may differ from the truth, and how exact its resets are. By
    default it knows the nominal device, its c2c and read noise exactly, and resets land on the
    bound: the most favourable case for model-based schemes."""

    nl_ltp: float | None = None
    """LTP nonlinearity label of the controller's device model (exponential devices), 0..9;
    None: the device's own (``device.nl_ltp`` or its ``a_ltp``)."""
    nl_ltd: float | None = None
    """LTD nonlinearity label of the controller's device model, 0..9; None: the device's own."""
    c2c: float | None = None
    """Cycle-to-cycle sigma the controller's optimization assumes (fraction of the range);
    None: the device's ``c2c``."""
    read_noise: float | None = None
    """Read-noise sigma the controller's optimization assumes (fraction of the range); None:
    ``sensing.read_noise``."""
    reset_noise: float = 0.0
    """Sigma of where a reset lands around the home bound, fraction of the range, >= 0 (clipped
    into the range); the controller believes it landed on the bound."""


def controller_view(device: DeviceConfig, sensing: SensingConfig,
                    controller: ControllerConfig) -> tuple[DeviceConfig, SensingConfig]:
    """The device and sensing descriptions the controller believes in."""
    believed = {}
    for direction in ("ltp", "ltd"):
        label = getattr(controller, f"nl_{direction}")
        if label is not None:
            believed[f"nl_{direction}"] = label
            believed[f"a_{direction}"] = None  # the label replaces an explicit curvature
    if controller.c2c is not None:
        believed["c2c"] = controller.c2c
    read_noise = sensing.read_noise if controller.read_noise is None else controller.read_noise
    return dataclasses.replace(device, **believed), dataclasses.replace(sensing, read_noise=read_noise)


@dataclass(frozen=True)
class ModelConfig:
    """The multilayer perceptron trained on chip."""

    hidden: tuple[int, ...] = (100,)
    """Hidden layer widths, each >= 1; input and output sizes come from the data."""
    activation: str = "sigmoid"
    """Hidden activation: ``sigmoid``, ``tanh`` or ``relu``. Output: softmax cross-entropy."""
    bias: bool = True
    """Give every layer a bias, stored as one more device column driven by a constant 1."""


@dataclass(frozen=True)
class TrainConfig:
    """Training loop."""

    epochs: int = 1
    """Passes over the (subset of the) training set, >= 1."""
    samples: int | None = None
    """Use only the first N training samples per epoch (None: all), >= 1."""
    test_samples: int | None = None
    """Evaluate on the first N test samples (None: all), >= 1."""
    validation: int = 0
    """Validation split: hold out the last N images of the training set, >= 0 (0: none). When
    N > 0, training uses the first (size - N) images (``samples`` counts within them) and every
    evaluation is on the N held-out images; the test set is never used. For tuning
    (``hnntrain tune``); result.json then reports ``validation_accuracy``."""
    lr: float = 0.1
    """Learning rate (weight units per unit gradient), > 0."""
    batch_size: int = 1
    """Samples per update; 1 is per-sample on-chip SGD (the reference), >= 1."""
    seed: int = 0
    """Run seed: weights, device-to-device draws, pulse noise and data order derive from it."""
    replicas: int = 1
    """Independent replicas trained in lockstep (ensemble axis E), >= 1; replica r uses its
    own draws from the run seed; all replicas see the same sample order."""
    shuffle: bool = True
    """Shuffle the training samples every epoch."""
    eval_every: int = 0
    """Also evaluate on the test set every N training samples (0: at epoch ends only), >= 0;
    gives accuracy-versus-training curves within an epoch."""
    un_every: int = 10
    """Estimate the window-1 update noise on every N-th update, >= 1 (it is a mean over
    updates, so sampling keeps it unbiased while saving time)."""
    un_window: int = 1000
    """Updates per long update-noise window, >= 2."""


@dataclass(frozen=True)
class DataConfig:
    """Where the dataset lives."""

    dir: str | None = None
    """Directory holding MNIST-layout IDX files (raw or .gz); None: $HNNTRAIN_DATA, the
    cache, then fetch MNIST."""


NUMERICS_VERSION = 2
"""Version of the numbers a run produces for a given config: 1 = torch.Generator streams;
2 = the counter-based stream of :mod:`hnntrain.physics.rng`. Recorded in ``result.json`` and
folded into :func:`config_hash`."""

ENGINES = ("auto", "fused", "reference")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the computation runs (does not change results on one machine)."""

    device: str = "cpu"
    """Torch device: ``cpu``, ``cuda`` or ``cuda:N``."""
    threads: int = 0
    """Threads, >= 0: the fused kernels' (which split replicas; same numbers for any count) and
    torch's intra-op threads for large batches; 0 picks measured defaults (kernels: all cores
    from 8 replicas on; torch: all cores). Torch keeps one thread for batch-1 work (batch x
    replicas < 512), which per-op overhead dominates."""
    checkpoint_seconds: float = 60.0
    """Write a checkpoint at least this often during an epoch, seconds > 0."""
    engine: str = "auto"
    """Update engine: ``reference`` (readable eager PyTorch, any device), ``fused`` (one numba
    pass per layer and update, CPU; an error where numba is missing) or ``auto`` (fused where
    numba, the CPU and a kernel for the scheme are available, else the reference with one
    warning line). Both draw the same random numbers (:mod:`hnntrain.physics.rng`) and agree to
    float rounding."""


@dataclass(frozen=True)
class CostConfig:
    """Prices of the hardware operations a run counts (``hnntrain cost`` re-prices finished runs).

    Pricing never changes training: ``cost`` is left out of the config hash, like ``runtime``.
    Write-pulse prices left unset come from ``pulse_preset``, else from the device preset's own
    technology (``gst-pcm``: PCM; ``ag-a-si``), else from NeuroSim's default device. Nodes:
    device and read prices from NeuroSim V3.0 (32 nm), ADC from a 28 nm design, digital energy
    from a 45 nm table, SRAM area from a 32 nm process (docs/cost.md lists each).
    """

    pulse_preset: str | None = None
    """Write-pulse technology whose prices fill the unset pulse fields: ``ag-a-si`` (NeuroSim
    V3.0's default device), ``pcm`` or ``ecram``; None: the device preset's own, else ag-a-si."""
    ltp_energy_j: float | None = None
    """J per LTP pulse on one device, >= 0. ag-a-si: 6.38e-11 = V^2 G t at 3.2 V, the mid-range
    conductance 20.8 nS and 300 µs (NeuroSim V3.0 RealDevice, after Jo et al., Nano Lett. 10:1297,
    2010); pcm: 0.675e-12 (SET, Kuzum et al., Nano Lett. 12:2179, 2012); ecram: 1e-15 (Tang et al.,
    IEDM 2018, projected for 100 nm x 100 nm)."""
    ltd_energy_j: float | None = None
    """J per LTD pulse on one device, >= 0. ag-a-si: 4.88e-11 (2.8 V, 20.8 nS, 300 µs; as LTP);
    pcm: 50e-12 (RESET, Kuzum et al. 2012); ecram: 1e-15 (Tang et al. 2018)."""
    ltp_time_s: float | None = None
    """Seconds per LTP pulse, >= 0. ag-a-si: 300e-6 (NeuroSim V3.0); pcm: 100e-9 (order of a
    partial-SET pulse, not from the cited paper); ecram: 5e-9 (Tang et al. 2018)."""
    ltd_time_s: float | None = None
    """Seconds per LTD pulse, >= 0. ag-a-si: 300e-6; pcm: 50e-9 (order of a RESET pulse, not
    from the cited paper); ecram: 5e-9."""
    program_energy_j: float | None = None
    """J per program event (a device reset to its home bound during refresh), >= 0. pcm: 50e-12
    (one RESET, Kuzum et al. 2012); None: ``device.levels`` pulses of the dearer direction."""
    program_time_s: float | None = None
    """Seconds per program event, >= 0. pcm: 50e-9; None: ``device.levels`` pulses of the
    slower direction."""
    read_energy_j: float = 2.6e-17
    """J per device read at the array (the cell only; the ADC is priced apart), >= 0:
    V^2 G t at 0.5 V, 20.8 nS and 5 ns (NeuroSim V3.0 RealDevice)."""
    read_time_s: float = 5e-9
    """Seconds of one read pulse on a row, >= 0 (NeuroSim V3.0 RealDevice ``readPulseWidth``)."""
    adc_fom_j_per_step: float = 34.4e-15
    """ADC Walden figure of merit, J per conversion step, >= 0: a conversion at b bits costs
    FoM * 2^b. 34.4 fJ: 7-bit 1.25 GS/s SAR in 28 nm (Ramkaj et al., IEEE JSSC 53(7):1889, 2018);
    the best SAR designs of the Murmann ADC survey reach a few fJ (4.4 fJ: van Elzakker et al.,
    IEEE JSSC 45(5), 2010)."""
    adc_time_s_per_bit: float = 1.14e-10
    """Seconds per converted bit (a SAR ADC decides one bit per cycle), >= 0: 0.8 ns per 7-bit
    conversion at 1.25 GS/s (Ramkaj et al. 2018)."""
    adc_area_um2_per_level: float = 55.5
    """ADC area per code level, µm², >= 0: an ADC of b bits takes 2^b times this (capacitive DAC
    scaling); 7,100 µm² / 128 levels (Ramkaj et al. 2018, 28 nm)."""
    mvm_adc_bits: int = 8
    """Bits of the ADCs that convert the array's column outputs in the forward and backward
    passes, 1..16 (NeuroSim V3.0 ``numBitPartialSum`` = 8); also the price of an exact read."""
    columns_per_adc: int = 16
    """Device columns sharing one ADC through a multiplexer, >= 1 (NeuroSim V3.0 ``numColMuxed``)."""
    cell_area_um2: float = 0.016384
    """Area of one device with its access transistor, µm², >= 0: 1T1R 4F x 4F at F = 32 nm
    (NeuroSim V3.0 ``heightInFeatureSize``/``widthInFeatureSize``, ``processNode``)."""
    digital_access_j_per_bit: float = 0.156e-12
    """J to read or write one bit of digital state, >= 0: 10 pJ per 64-bit access of an 8 KB
    SRAM at 45 nm (Horowitz, ISSCC 2014)."""
    digital_bit_area_um2: float = 0.171
    """Area of one bit of digital state, µm², >= 0: 6T SRAM cell of Intel's 32 nm process
    (Natarajan et al., IEDM 2008)."""
    digital_mac_j: float = 4.6e-12
    """J per floating-point multiply-accumulate of the software reference, >= 0: 32-bit FP
    multiply 3.7 pJ + add 0.9 pJ at 45 nm (Horowitz, ISSCC 2014)."""
    update_style: str = "parallel"
    """How weights are written: ``parallel`` (every device of an array pulsed at once, the
    outer-product update of Gokmen & Vlasov, Front. Neurosci. 10:333, 2016) or ``row`` (one input
    row at a time, as NeuroSim does). Sets latency only."""


@dataclass(frozen=True)
class RunConfig:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    pair: PairConfig = field(default_factory=PairConfig)
    sensing: SensingConfig = field(default_factory=SensingConfig)
    scheme: SchemeConfig = field(default_factory=SchemeConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    cost: CostConfig = field(default_factory=CostConfig)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model"]["hidden"] = list(self.model.hidden)
        out["scheme"]["params"] = dict(self.scheme.params)
        return out


def config_hash(cfg: RunConfig) -> str:
    """Stable hash of the resolved config and the numerics version (runtime settings and hardware
    prices excluded: they do not change results), so that runs of another random stream are
    never mixed in."""
    data = cfg.to_dict()
    data.pop("runtime", None)
    data.pop("cost", None)
    data["numerics_version"] = NUMERICS_VERSION
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


SECTION_CLASSES = {
    "device": DeviceConfig,
    "pair": PairConfig,
    "sensing": SensingConfig,
    "scheme": SchemeConfig,
    "controller": ControllerConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "data": DataConfig,
    "runtime": RuntimeConfig,
    "cost": CostConfig,
}


def flatten_config(cfg: RunConfig) -> dict[str, Any]:
    return dotted_config(cfg.to_dict())


def dotted_config(nested: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved config as nested tables (``RunConfig.to_dict()``, or the ``config`` of a
    result.json) -> dotted keys, scheme options as ``scheme.<option>``."""
    out = {}
    for section, table in nested.items():
        for key, value in table.items():
            if section == "scheme" and key == "params":
                out.update({f"scheme.{k}": v for k, v in value.items()})
            else:
                out[f"{section}.{key}"] = value
    return out


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(key, message)


def validate(cfg: RunConfig) -> None:
    """Range checks, the scheme name and its options. Device-specific checks happen when the
    device is built, with the same kind of message."""
    d = cfg.device
    _check(d.model in ("exponential", "linear", "table"), "device.model",
           f"unknown model {d.model!r}; use exponential, linear or table")
    for key in ("nl_ltp", "nl_ltd"):
        nl = abs(getattr(d, key))
        _check(math.isfinite(nl) and nl <= 9.0, f"device.{key}",
               f"NL label {getattr(d, key)} is outside NeuroSim's table range 0..9")
    for key in ("a_ltp", "a_ltd"):
        a = getattr(d, key)
        _check(a is None or (math.isfinite(a) and a > 0), f"device.{key}", "must be a positive number of pulses")
    _check(d.levels >= 2, "device.levels", f"must be >= 2 pulses (got {d.levels})")
    _check(d.g_min >= 0, "device.g_min", f"must be >= 0 microsiemens (got {d.g_min})")
    _check(d.g_max > d.g_min, "device.g_max", f"must exceed device.g_min ({d.g_max} <= {d.g_min})")
    _check(0 <= d.c2c <= 1, "device.c2c", f"must be a fraction of the range in 0..1 (got {d.c2c}; 2 % is 0.02)")
    _check(d.c2c_mode in ("additive", "multiplicative"), "device.c2c_mode", "use additive or multiplicative")
    _check(d.d2d_nl >= 0, "device.d2d_nl", "must be >= 0 (NL units)")
    _check(0 <= d.d2d_g <= 0.5, "device.d2d_g", "must be a fraction of the range in 0..0.5")
    _check(d.model != "table" or d.table is not None, "device.table", "model 'table' needs a CSV path")
    p = cfg.pair
    _check(p.w_max > 0, "pair.w_max", "must be > 0")
    _check(0 <= p.g_ref_fraction <= 1, "pair.g_ref_fraction", "must be a fraction of the range in 0..1")
    _check(p.init_scale >= 0, "pair.init_scale", "must be >= 0")
    s = cfg.sensing
    _check(0 <= s.adc_bits <= 16, "sensing.adc_bits", f"must be 0 (exact) or 1..16 bits (got {s.adc_bits})")
    _check(s.read_noise >= 0, "sensing.read_noise", "must be >= 0 (fraction of the range)")
    _check(s.every >= 1, "sensing.every", f"must be >= 1 sample (got {s.every})")
    _check(cfg.scheme.max_pulses >= 0, "scheme.max_pulses", "must be >= 0 pulses (0: no clipping)")
    c = cfg.controller
    for key in ("nl_ltp", "nl_ltd"):
        value = getattr(c, key)
        _check(value is None or 0 <= value <= 9, f"controller.{key}", "must be a NeuroSim label in 0..9")
        _check(value is None or d.model == "exponential", f"controller.{key}",
               "a believed NL label needs device.model = exponential")
    _check(c.c2c is None or 0 <= c.c2c <= 1, "controller.c2c", "must be a fraction of the range in 0..1")
    _check(c.read_noise is None or c.read_noise >= 0, "controller.read_noise", "must be >= 0")
    _check(c.reset_noise >= 0, "controller.reset_noise", "must be >= 0 (fraction of the range)")
    m = cfg.model
    _check(len(m.hidden) >= 0 and all(h >= 1 for h in m.hidden), "model.hidden", "widths must be >= 1")
    _check(m.activation in ("sigmoid", "tanh", "relu"), "model.activation", "use sigmoid, tanh or relu")
    t = cfg.train
    _check(t.epochs >= 1, "train.epochs", f"must be >= 1 (got {t.epochs})")
    _check(t.samples is None or t.samples >= 1, "train.samples", "must be >= 1 or omitted for all")
    _check(t.test_samples is None or t.test_samples >= 1, "train.test_samples", "must be >= 1 or omitted")
    _check(t.validation >= 0, "train.validation", f"must be >= 0 held-out training images (got {t.validation})")
    _check(t.lr > 0 and math.isfinite(t.lr), "train.lr", f"must be a positive number (got {t.lr})")
    _check(t.batch_size >= 1, "train.batch_size", "must be >= 1")
    _check(t.replicas >= 1, "train.replicas", "must be >= 1")
    _check(t.seed >= 0, "train.seed", "must be >= 0")
    _check(t.un_every >= 1, "train.un_every", "must be >= 1")
    _check(t.eval_every >= 0, "train.eval_every", "must be >= 0 samples (0: epoch ends only)")
    _check(t.un_window >= 2, "train.un_window", "must be >= 2")
    r = cfg.runtime
    _check(r.device == "cpu" or r.device.startswith("cuda") or r.device == "mps", "runtime.device",
           f"unknown torch device {r.device!r}; use cpu or cuda")
    _check(r.threads >= 0, "runtime.threads", "must be >= 0")
    _check(r.checkpoint_seconds > 0, "runtime.checkpoint_seconds", "must be > 0")
    _check(r.engine in ENGINES, "runtime.engine", f"use one of {', '.join(ENGINES)}")
    validate_cost(cfg.cost)


def validate_cost(c: CostConfig) -> None:
    """Range checks of the ``[cost]`` section (prices are non-negative numbers). The name in
    ``pulse_preset`` is checked where presets are resolved (:func:`hnntrain.spec.presets.pulse_prices`)."""
    for f in fields(CostConfig):
        value = getattr(c, f.name)
        if isinstance(value, float):
            _check(math.isfinite(value) and value >= 0, f"cost.{f.name}", f"must be a price >= 0 (got {value})")
    _check(1 <= c.mvm_adc_bits <= 16, "cost.mvm_adc_bits", f"must be 1..16 bits (got {c.mvm_adc_bits})")
    _check(c.columns_per_adc >= 1, "cost.columns_per_adc", f"must be >= 1 (got {c.columns_per_adc})")
    _check(c.update_style in ("parallel", "row"), "cost.update_style", "use parallel or row")


__all__ = [
    "ConfigError",
    "ControllerConfig",
    "CostConfig",
    "DataConfig",
    "DeviceConfig",
    "ModelConfig",
    "PairConfig",
    "RunConfig",
    "RuntimeConfig",
    "SchemeConfig",
    "SensingConfig",
    "TrainConfig",
    "controller_view",
    "dotted_config",
    "flatten_config",
    "config_hash",
    "NUMERICS_VERSION",
    "validate",
]
