"""What every command shares: the Typer apps, the consoles, the one-line error, the common
flags (defined once here), and the output-folder rules.

Errors: anything that is the user's to fix (a bad value, a missing or foreign file, a path
that is a file where a folder is needed) ends in one red line that names the field or file
and the fix, and exit status 2; never a traceback. Messages are printed as plain text: rich
markup would swallow the ``[device]`` and ``[grid]`` that explain file formats.

Vocabulary: ``--device`` is the memory device everywhere (a preset, a measured-curve CSV or a
device TOML); the torch device is ``--torch-device`` (``runtime.device``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Simulate on-chip training with pairs of non-ideal memory devices.")
device_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Device models: list presets, plot responses, fit measured LTP/LTD curves.")
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Datasets: fetch MNIST.")
config_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Configuration: the resolved config of a file and flags; every key documented.")
app.add_typer(device_app, name="device")
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")

# Wide tables when the output is a file or a pipe (rich would assume 80 columns).
console = Console(width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def fail(message: str) -> NoReturn:
    """One red line (the message as plain text) and exit status 2."""
    err_console.print("error:", style="bold red", end=" ")
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix (shown as one line, no traceback)."""
    from hnntrain.experiments.store import StoreError
    from hnntrain.io.data import DataError
    from hnntrain.physics.devices import TableError
    from hnntrain.physics.devices.measured import FitError
    from hnntrain.spec.config import ConfigError

    return (ConfigError, DataError, TableError, FitError, StoreError, OSError)


def describe(err: BaseException) -> str:
    """The one line for a user error; file-system errors name the path and what to do."""
    if isinstance(err, OSError) and err.filename is not None:
        hints = {IsADirectoryError: "pass a file", NotADirectoryError: "a parent of it is a file; pass a folder path",
                 FileExistsError: "it is a file; pass a folder", PermissionError: "check its permissions"}
        hint = next((h for cls, h in hints.items() if isinstance(err, cls)), "check the path")
        return f"{err.filename}: {err.strerror or err}; {hint}"
    return str(err)


@contextlib.contextmanager
def user_input():
    """Turn user errors raised inside the block into one line and exit status 2."""
    try:
        yield
    except user_errors() as err:
        fail(describe(err))


# -- the flags every training command shares ----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CommonFlags:
    """``--samples --epochs --seeds --seed --c2c --adc-bits --sense-every``: the same names,
    meanings and config keys in ``run``, ``compare``, ``sweep`` and ``reproduce``."""

    samples: Optional[int] = None
    epochs: Optional[int] = None
    seeds: Optional[int] = None
    seed: Optional[int] = None
    c2c: Optional[float] = None
    adc_bits: Optional[int] = None
    sense_every: Optional[int] = None

    KEYS = {"samples": "train.samples", "epochs": "train.epochs", "seeds": "train.replicas", "seed": "train.seed",
            "c2c": "device.c2c", "adc_bits": "sensing.adc_bits", "sense_every": "sensing.every"}

    def values(self) -> dict[str, Any]:
        """The dotted config values of the flags given."""
        return {key: getattr(self, name) for name, key in self.KEYS.items() if getattr(self, name) is not None}

    def apply(self, values: dict[str, Any], explicit: dict[str, Any] | None = None,
              grid: dict[str, Any] | None = None, where: str = "") -> dict[str, Any]:
        """``values`` (defaults, file, preset ...) with the flags on top. A flag that contradicts
        ``explicit`` (the ``--set`` values) is an error, as is one naming a key a sweep's
        ``grid`` varies: which would win is not obvious."""
        from hnntrain.spec.config import ConfigError

        flag_of = {key: "--" + name.replace("_", "-") for name, key in self.KEYS.items()}
        out = dict(values)
        for key, value in self.values().items():
            if grid and key in grid:
                raise ConfigError(flag_of[key], f"{where or 'the sweep'} varies {key} in its [grid]; drop the flag")
            if explicit and key in explicit and explicit[key] != value:
                raise ConfigError(flag_of[key], f"contradicts --set {key}={explicit[key]!r}; give one of them")
            out[key] = value
        return out


_FLAG_HELP = {
    "samples": (int, "N", "Training samples per epoch (train.samples; default: all)."),
    "epochs": (int, "N", "Epochs (train.epochs; default 1)."),
    "seeds": (int, "N", "Independent replicas per run, trained in lockstep (train.replicas; default 1)."),
    "seed": (int, "N", "Run seed (train.seed; default 0): weights, device draws, noise and data order."),
    "c2c": (float, "SIGMA", "Cycle-to-cycle sigma, fraction of the range, e.g. 0.02 (device.c2c; default: the device's)."),
    "adc_bits": (int, "BITS", "ADC bits of every scheme that senses, 0 exact (sensing.adc_bits; default 4)."),
    "sense_every": (int, "K", "Sensing interval K in samples (sensing.every; default 100)."),
}


def flag_option(name: str):
    """The option of one common flag (``"adc_bits"`` -> ``--adc-bits``), for commands that take
    only some of them."""
    kind, metavar, text = _FLAG_HELP[name]
    return Annotated[Optional[kind], typer.Option("--" + name.replace("_", "-"), metavar=metavar, help=text,
                                                  show_default=False)]


def with_common_flags(command):
    """Give a command the common flags; it receives them as one ``flags: CommonFlags``."""
    signature = inspect.signature(command)
    hints = typing.get_type_hints(command, include_extras=True)  # the command's own options, evaluated
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
           if p.name != "flags"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=flag_option(name))
             for name in _FLAG_HELP]

    @functools.wraps(command)
    def wrapper(**kwargs):
        flags = CommonFlags(**{name: kwargs.pop(name) for name in _FLAG_HELP})
        return command(flags=flags, **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
    wrapper.__signature__ = signature.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


# Options several commands take, defined once.
SetOption = Annotated[list[str], typer.Option("--set", "-s", metavar="KEY=VALUE",
                                              help="Set any config key, e.g. --set device.levels=32 (repeatable; "
                                                   "hnntrain config keys lists them).")]
DeviceOption = Annotated[Optional[str], typer.Option("--device", "-d", metavar="DEVICE",
                                                     help="Memory device: a preset (hnntrain device list), a "
                                                          "measured-curve CSV or a device TOML.")]
TorchDeviceOption = Annotated[Optional[str], typer.Option("--torch-device", metavar="cpu|cuda",
                                                          help="Where torch computes (runtime.device; default cpu).")]
DataDirOption = Annotated[Optional[Path], typer.Option("--data-dir", metavar="DIR",
                                                       help="Folder of MNIST-layout IDX files (data.dir; default: "
                                                            "MNIST from the cache, fetched on first use).")]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite earlier outputs in --out.")]
WorkersOption = Annotated[int, typer.Option("--workers", "-w", metavar="N",
                                            help="Local processes (or LocalCluster workers); 0: every core.")]
SchedulerOption = Annotated[Optional[str], typer.Option("--scheduler", metavar="ADDRESS",
                                                        help="Dask scheduler address (tcp://host:8786), or 'local' "
                                                             "for a LocalCluster on this machine.")]


def device_values(spec: str | None) -> dict[str, Any]:
    """``--device`` -> ``device.*`` config values (none when not given)."""
    from hnntrain.io.resolve import device_values as values_of

    return {} if spec is None else {f"device.{k}": v for k, v in values_of(spec).items()}


def check_out_folder(out: Path) -> None:
    """An output folder must not be a file (one clear line instead of a traceback later)."""
    from hnntrain.spec.config import ConfigError

    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError("--out", f"{parent} is a file; pass a folder")
            return
