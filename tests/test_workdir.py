"""cgan.run.workdir: writability, the resume check, the lock, config.json."""

import json
import os

import pytest

from cgan.run import workdir
from cgan.core.config import TrainConfig
from cgan.training.distribute import WorkerInfo
from cgan.core.errors import UserError


def test_unwritable_workdir_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write to --workdir=.*choose a writable folder"):
        workdir.check_writable(str(tmp_path / "file" / "run"))


def test_resume_is_refused_when_the_stored_run_built_another_model(tmp_path):
    config = TrainConfig(workdir=str(tmp_path), latent_dim=64, ema_decay=0.99)
    workdir.check_resumable(config)  # nothing stored yet
    workdir.write_config(config, {"resolution": 64})
    workdir.check_resumable(TrainConfig(workdir=str(tmp_path), latent_dim=64, ema_decay=0.9, batch_size=64))
    with pytest.raises(UserError, match="--latent_dim=64, not 100: pass --latent_dim=64 to resume"):
        workdir.check_resumable(TrainConfig(workdir=str(tmp_path), ema_decay=0.99))
    with pytest.raises(UserError, match="holds a run with --ema_decay: pass --ema_decay=0.99"):
        workdir.check_resumable(TrainConfig(workdir=str(tmp_path), latent_dim=64))


def test_write_config_holds_the_options_and_the_resolved_values(tmp_path):
    config = TrainConfig(workdir=str(tmp_path), batch_size=8)
    text = workdir.write_config(config, {"num_replicas": 2})
    stored = json.load(open(tmp_path / "config.json"))
    assert stored == json.loads(text) and stored["batch_size"] == 8 and stored["num_replicas"] == 2


def test_the_chief_holds_the_lock_and_clears_dead_writers_temporaries(tmp_path):
    dead = tmp_path / ".tmp999999999_generator.keras"
    dead.write_text("half")
    with workdir.hold(str(tmp_path), WorkerInfo()):
        assert not dead.exists()
        assert str(os.getpid()) in (tmp_path / ".lock").read_text()
        with pytest.raises(UserError, match="in use by another trainer"):
            with workdir.hold(str(tmp_path), WorkerInfo()):
                pass
    with workdir.hold(str(tmp_path), WorkerInfo(num_workers=2, index=1)):
        pass  # other workers take no lock
