"""``hnntrain tune``: every scheme tuned alike on a validation split (docs/tuning.md), through
the same executor, store, resume and progress display as ``sweep`` and ``compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hnntrain.cli.common import (
    CommonFlags,
    DataDirOption,
    DeviceOption,
    SchedulerOption,
    SetOption,
    TorchDeviceOption,
    WorkersOption,
    app,
    check_out_folder,
    console,
    fail,
    user_input,
    with_common_flags,
)
from hnntrain.cli.training import _execute, _scheme_specs, shared_settings


@app.command("tune")
@with_common_flags
def tune_command(
    device: DeviceOption = None,
    schemes: Annotated[str, typer.Option("--schemes", metavar="SPECS", help="Schemes to tune, as in compare; an "
                                         "option fixed in a variant (crus:accumulate=true) is not searched.")] = " ".join(
        __import__("hnntrain.experiments.compare", fromlist=["x"]).DEFAULT_SCHEMES),
    trials: Annotated[int, typer.Option("--trials", metavar="N", help="Trials per scheme, the same for every "
                                        "scheme.")] = 8,
    validation: Annotated[int, typer.Option("--validation", metavar="N", help="Training images held out at the end "
                                            "of the training set to score the trials (train.validation); the test "
                                            "set is never used to choose.")] = 10000,
    set_: SetOption = [],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for tuned.toml, tune.md and the "
                                      "store tune.sqlite; the same command again continues there.")] = Path("runs/tune"),
    workers: WorkersOption = 0,
    scheduler: SchedulerOption = None,
    torch_device: TorchDeviceOption = None,
    data_dir: DataDirOption = None,
    flags: CommonFlags = CommonFlags(),
) -> None:
    """Tune every scheme alike: the same number of trials over its learning rate and key options,
    scored on a validation split; then test the chosen settings. Writes OUT/tuned.toml for
    compare --tuned. Resumable."""
    from hnntrain.experiments.store import ResultStore
    from hnntrain.experiments.tune import TUNED, tune
    from hnntrain.spec.config import ConfigError

    names = _scheme_specs(schemes)
    store_path = out / "tune.sqlite"
    with user_input():
        base = shared_settings(device, set_, flags, torch_device, data_dir)
        if any(k.startswith("scheme.") and k != "scheme.max_pulses" for k in base) or "train.lr" in base:
            raise ConfigError("--set", "the learning rate and the scheme options are what tune searches; fix an "
                                       "option in a scheme spec instead (crus:accumulate=true)")
        check_out_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        store = ResultStore(store_path)

        def run_sweep(sweep, results):
            return _execute(sweep, results, store_path, workers, scheduler)

        try:
            choices = tune(base, names, trials, validation, store, out, run_sweep)
        except KeyboardInterrupt:
            fail(f"interrupted; finished trials are kept in {store_path}; continue with the same command")
    console.print((out / "tune.md").read_text(), highlight=False, markup=False)
    console.print(f"written: {out / TUNED} (use: hnntrain compare --tuned {out / TUNED}), {out / 'tune.md'}; "
                  f"store: {store_path}", highlight=False, markup=False)
    failed = [spec for spec, c in choices.items() if c.validation_accuracy is None]
    if failed:
        fail(f"every trial of {', '.join(failed)} failed; see {out / 'tune.md'}")
