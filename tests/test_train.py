import json

import pytest

from hnntrain.engine.run import RESULT, run
from hnntrain.io.resolve import build_config

SMALL = {"model.hidden": [20], "train.lr": 0.2, "runtime.checkpoint_seconds": 1e-9}


def cfg_for(**values):
    return build_config({**SMALL, **{k.replace("__", "."): v for k, v in values.items()}})


def strip_times(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_fp_learns_and_ideal_sgd_follows(tmp_path, blobs):
    fp = run(cfg_for(scheme__name="fp", train__epochs=3), tmp_path / "fp", datasets=blobs)
    sgd = run(cfg_for(scheme__name="sgd", device__preset="ideal", train__epochs=3), tmp_path / "sgd", datasets=blobs)
    assert fp["status"] == "ok" and fp["test_accuracy"] > 0.9
    assert sgd["test_accuracy"] > fp["test_accuracy"] - 0.06
    assert sgd["epochs"][-1]["pulses"]["total"] > 0 and fp["epochs"][-1]["pulses"]["total"] == 0


def test_result_contract(tmp_path, blobs):
    res = run(cfg_for(device__preset="abrupt-ltd", train__replicas=2, train__epochs=2), tmp_path, datasets=blobs)
    on_disk = json.loads((tmp_path / RESULT).read_text())
    assert on_disk["test_accuracy"] == pytest.approx(res["test_accuracy"])
    for key in ("status", "error", "config", "test_accuracy", "replicas", "epochs", "hardware", "samples_per_s"):
        assert key in on_disk
    assert on_disk["status"] == "ok" and on_disk["error"] is None
    assert len(on_disk["replicas"]) == 2
    assert on_disk["test_accuracy"] == pytest.approx(sum(on_disk["replicas"]) / 2)
    epoch = on_disk["epochs"][-1]
    for key in ("test_accuracy", "train_loss", "update_noise", "pulses", "senses"):
        assert key in epoch
    assert set(epoch["update_noise"]) >= {"window1", "window"}
    assert epoch["update_noise"]["window1"] > 0 and epoch["update_noise"]["window"] > 0
    assert on_disk["config"]["device"]["nl_ltd"] == 8.0 and on_disk["config"]["train"]["replicas"] == 2
    assert on_disk["hardware"]["devices_per_weight"] == 2


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path, blobs):
    a = run(cfg_for(device__preset="abrupt-ltd", device__c2c=0.02, device__d2d_nl=0.3), tmp_path / "a", datasets=blobs)
    b = run(cfg_for(device__preset="abrupt-ltd", device__c2c=0.02, device__d2d_nl=0.3), tmp_path / "b", datasets=blobs)
    c = run(cfg_for(device__preset="abrupt-ltd", device__c2c=0.02, device__d2d_nl=0.3, train__seed=1),
            tmp_path / "c", datasets=blobs)
    assert strip_times(a["epochs"]) == strip_times(b["epochs"])
    assert strip_times(a["epochs"]) != strip_times(c["epochs"])


def test_interrupted_run_resumes_to_identical_numbers(tmp_path, blobs):
    cfg = cfg_for(device__preset="abrupt-ltd", device__c2c=0.02, train__epochs=2)
    straight = run(cfg, tmp_path / "straight", datasets=blobs)

    def stop_midway(epoch, done, total, loss):
        if epoch == 1 and 0 < done < total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "broken", datasets=blobs, progress=stop_midway)
    partial = json.loads((tmp_path / "broken" / RESULT).read_text())
    assert partial["status"] == "failed" and "--resume" in partial["error"]
    resumed = run(cfg, tmp_path / "broken", resume=True, datasets=blobs)
    assert resumed["status"] == "ok"
    assert strip_times(resumed["epochs"]) == strip_times(straight["epochs"])


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_between_updates_and_the_resume_is_exact(tmp_path, blobs, signame):
    import signal

    cfg = cfg_for(device__preset="abrupt-ltd", device__c2c=0.02, scheme__name="crus", train__epochs=2)
    straight = run(cfg, tmp_path / "straight", datasets=blobs)
    sent = []

    def signal_midway(epoch, done, total, loss):
        if epoch == 1 and 0 < done < total and not sent:
            sent.append(done)
            signal.raise_signal(getattr(signal, signame))  # the handler runs now, mid-loop

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # SIG_IGN under nohup
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "cut", datasets=blobs, progress=signal_midway)
    partial = json.loads((tmp_path / "cut" / RESULT).read_text())
    assert sent and "checkpoint saved" in partial["error"] and "--resume" in partial["error"]
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the caller's handlers restored
    resumed = run(cfg, tmp_path / "cut", resume=True, datasets=blobs)
    assert strip_times(resumed["epochs"]) == strip_times(straight["epochs"])


def test_resume_refuses_a_different_config(tmp_path, blobs):
    run(cfg_for(train__epochs=1), tmp_path, datasets=blobs, keep_checkpoint=True)
    with pytest.raises(ValueError, match="different configuration"):
        run(cfg_for(train__epochs=1, train__lr=0.3), tmp_path, resume=True, datasets=blobs)


def test_divergence_is_recorded_as_failed(tmp_path, blobs):
    res = run(cfg_for(scheme__name="fp", train__lr=1e38), tmp_path, datasets=blobs)
    assert res["status"] == "failed"
    assert "NaN or infinite" in res["error"] and "train.lr" in res["error"]
    assert json.loads((tmp_path / RESULT).read_text())["status"] == "failed"


def test_minibatch_mode_trains(tmp_path, blobs):
    res = run(cfg_for(scheme__name="sgd", device__preset="ideal", train__batch_size=8, train__lr=0.5,
                      train__epochs=3), tmp_path, datasets=blobs)
    assert res["status"] == "ok" and res["test_accuracy"] > 0.6
