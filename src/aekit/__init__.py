"""aekit: every classic autoencoder as one composable, correct PyTorch model.

A variant is a point in corruption x backbone x bottleneck x regularizers x likelihood:

    import aekit
    model = aekit.build("vae", input_shape=(1, 28, 28), latent_dim=2)
    out = model(x)            # out.loss, out.terms, out.x_hat, out.z
    aekit.save(model, "run/model"); same = aekit.load("run/model")
    aekit.save_pretrained(model, "hub-folder"); same = aekit.from_pretrained("hub-folder")  # + a model card
"""

from ._version import __version__
from ._compat import install as _install_compat

_install_compat()  # first-release import paths (aekit.train, aekit.sklearn, ...) keep working

from .build import build, list_variants, migrate_config, resolve_config  # noqa: E402
from .checkpoint import load, save  # noqa: E402
from .errors import AekitError, CheckpointError, ConfigError, DataError, ShapeError, TrainingError  # noqa: E402
from .model import AEOutput, Autoencoder  # noqa: E402
from .pretrained import from_pretrained, save_pretrained  # noqa: E402
from .training.trainer import TrainConfig, Trainer, fit  # noqa: E402
from .registry import VARIANTS  # noqa: E402

__all__ = [
    "AEOutput", "AekitError", "Autoencoder", "CheckpointError", "ConfigError", "DataError", "ShapeError",
    "TrainConfig", "Trainer", "TrainingError", "VARIANTS", "fit", "build", "from_pretrained", "list_variants", "load",
    "migrate_config", "resolve_config", "save", "save_pretrained", "__version__",
]
