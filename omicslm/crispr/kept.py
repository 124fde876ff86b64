"""Kept CRISPR methods: what a trained method needs to score new guides, saved without pickle.

``crispr_train`` (and ``crispr_stack``) write one directory per method, ``models/<method>/kept/``::

    method.json            name, kind, spec, the settings the inputs are built with (k, batch size, head, pooling,
                           binding-energy use, gbm feature groups) and, per member, its file and the train rows'
                           target / energy normalisation; a stack: its members' names, weights and intercept
    encoder_config.json    the BERT encoder's config (encoder kinds): its weights are in each member's file
    member<i>.safetensors  a torch member's state dict (safetensors: tensors only)
    member<i>.skops        a boosted-tree member (skops; loaded with an explicit list of trusted types)

:func:`load_kept` rebuilds the method in any process; :meth:`KeptMethod.predict` scores 30mers (4 nt + 20-nt spacer +
NGG + 3 nt) on the 0-100 scale, the mean over an ensemble's members, exactly as training scored its own guides.
A stack's members are the sibling methods' kept directories (``models/<member>/kept``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omicslm.errors import InputError
from omicslm.train.publish import replacing_dir

log = logging.getLogger(__name__)

FORMAT = 1
METHOD_JSON = "method.json"
ENCODER_CONFIG = "encoder_config.json"
#: the one type a HistGradientBoostingRegressor's skops file holds beyond skops' own trusted defaults
TRUSTED_SKOPS_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)
EFF_MIN, EFF_MAX = 0.0, 100.0


def save_kept(out_dir: str | os.PathLike, *, method: str, spec: dict, settings: dict, members: list[dict]) -> Path:
    """Write the kept directory of a trained method (atomically: a failed write leaves the old one or none).

    ``members``: per member ``model`` (a torch module or a fitted sklearn estimator) and ``norm`` (a dict of
    ``y_mean, y_sd, e_mean, e_sd`` for torch members); ``settings``: k, batch_size, head_hidden, dropout,
    pooling, use_energy, seq_length (and, for gbm, features / scaffold).
    """
    import skops.io as sio
    import torch
    from safetensors.torch import save_file

    record = {"format": FORMAT, "method": method, "kind": spec["kind"], "spec": spec, "settings": settings,
              "members": []}
    with replacing_dir(out_dir) as tmp:
        for i, m in enumerate(members):
            model = m["model"]
            if isinstance(model, torch.nn.Module):
                name = f"member{i}.safetensors"
                state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
                save_file(state, str(tmp / name))
                if i == 0 and hasattr(model, "encoder"):
                    (tmp / ENCODER_CONFIG).write_text(model.encoder.config.to_json_string())
            else:
                name = f"member{i}.skops"
                sio.dump(model, tmp / name)
            record["members"].append({"file": name, **{k: float(v) for k, v in (m.get("norm") or {}).items()}})
        (tmp / METHOD_JSON).write_text(json.dumps(record, indent=1) + "\n")
    return Path(out_dir)


def save_kept_stack(out_dir: str | os.PathLike, *, method: str, members: list[str], weights, intercept: float) -> Path:
    """Write the kept directory of a stack: its members' names and the fitted blend."""
    record = {"format": FORMAT, "method": method, "kind": "stack", "members": list(members),
              "weights": [float(w) for w in weights], "intercept": float(intercept)}
    with replacing_dir(out_dir) as tmp:
        (tmp / METHOD_JSON).write_text(json.dumps(record, indent=1) + "\n")
    return Path(out_dir)


def _read_record(kept_dir: Path) -> dict:
    path = kept_dir / METHOD_JSON
    if not path.is_file():
        raise InputError(kept_dir, f"not a kept CRISPR method (no {METHOD_JSON}): train it with crispr_train")
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid JSON: {e}") from None
    if record.get("format") != FORMAT:
        raise InputError(path, f"kept-method format {record.get('format')!r}, expected {FORMAT}")
    return record


@dataclass
class KeptMethod:
    """A trained method rebuilt from its kept directory; :meth:`predict` scores 30mers."""

    name: str
    kind: str
    record: dict
    members: list = field(default_factory=list)  # torch modules / sklearn estimators, or KeptMethods of a stack

    @property
    def uses_energy(self) -> bool:
        if self.kind == "stack":
            return any(m.uses_energy for m in self.members)
        return bool(self.record["settings"].get("use_energy"))

    def predict_members(self, mer30, energy: np.ndarray | None = None) -> np.ndarray:
        """Each member's predictions (0-100): ndarray, float, shape (n_members, n); a stack has one row."""
        mer30 = np.asarray(mer30, dtype=str)
        if self.kind == "stack":  # fitted on the members' predictions as predictions.tsv writes them (4 decimals)
            cols = np.column_stack([_as_written(m.predict(mer30, energy)) for m in self.members])
            blend = self.record["intercept"] + cols @ np.asarray(self.record["weights"])
            return np.clip(blend, EFF_MIN, EFF_MAX)[None]
        if self.uses_energy and energy is None:
            raise ValueError(f"method {self.name} uses the binding energy: pass energy (kcal/mol per guide)")
        if self.kind == "gbm":  # the members share their features: computed once (ViennaRNA folding is slow)
            x = self._gbm_features(mer30, energy)
            return np.stack([np.clip(m.predict(x), EFF_MIN, EFF_MAX) for m in self.members])
        return np.stack([self._torch(m, info, mer30, energy) for m, info in zip(self.members, self.record["members"])])

    def predict(self, mer30, energy: np.ndarray | None = None) -> np.ndarray:
        """The method's prediction (0-100; an ensemble's member mean): ndarray, float, shape (n,)."""
        return self.predict_members(mer30, energy).mean(axis=0)

    def _gbm_features(self, mer30: np.ndarray, energy) -> np.ndarray:
        from omicslm.crispr.gbm import SCAFFOLD, sequence_features

        s = self.record["settings"]
        return sequence_features(mer30, energy if s["use_energy"] else None, s.get("features", ()),
                                 s.get("scaffold", SCAFFOLD))

    def _torch(self, model, info: dict, mer30: np.ndarray, energy) -> np.ndarray:
        import torch

        from omicslm.crispr.tokenize import kmer_ids
        from omicslm.crispr.train import model_predictions

        s = self.record["settings"]
        data = {"mer30": mer30, "energy": np.full(len(mer30), np.nan, np.float32) if energy is None
                else np.asarray(energy, np.float32),
                "input_ids": np.array([kmer_ids(m, s["k"]) for m in mer30], dtype=np.int64).reshape(len(mer30), -1)}
        with torch.no_grad():
            return model_predictions(model, data, np.arange(len(mer30)), self.kind, batch_size=s["batch_size"],
                                     y_mean=info["y_mean"], y_sd=info["y_sd"], e_mean=info["e_mean"],
                                     e_sd=info["e_sd"])


def _as_written(values: np.ndarray) -> np.ndarray:
    """``values`` as a predictions.tsv column reads back (``%.4f`` text parsed again)."""
    return np.array([float(f"{v:.4f}") for v in values])


def load_kept(kept_dir: str | os.PathLike) -> KeptMethod:
    """Rebuild a kept method (no pickle: safetensors, skops with :data:`TRUSTED_SKOPS_TYPES`, JSON).

    Raises
    ------
    InputError
        A missing or foreign directory, a corrupt member file, an unexpected type in a skops file.
    """
    kept_dir = Path(kept_dir)
    record = _read_record(kept_dir)
    name, kind = record["method"], record["kind"]
    if kind == "stack":
        siblings = [kept_dir.parent.parent / m / "kept" for m in record["members"]]
        return KeptMethod(name, kind, record, [load_kept(d) for d in siblings])
    members = [_load_member(kept_dir, record, info) for info in record["members"]]
    log.info("kept method %s (%s): %d member(s) from %s", name, kind, len(members), kept_dir)
    return KeptMethod(name, kind, record, members)


def _load_member(kept_dir: Path, record: dict, info: dict):
    path = kept_dir / info["file"]
    if not path.is_file():
        raise InputError(path, f"member file of kept method {record['method']} is missing")
    if path.suffix == ".skops":
        import skops.io as sio

        untrusted = set(sio.get_untrusted_types(file=path)) - set(TRUSTED_SKOPS_TYPES)
        if untrusted:
            raise InputError(path, f"skops file holds types outside the trusted list: {', '.join(sorted(untrusted))}")
        return sio.load(path, trusted=list(TRUSTED_SKOPS_TYPES))
    return _load_torch_member(kept_dir, record, path)


def _load_torch_member(kept_dir: Path, record: dict, path: Path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from omicslm.crispr.models import build_model

    s = record["settings"]
    encoder_config = None
    if (kept_dir / ENCODER_CONFIG).is_file():
        encoder_config = json.loads((kept_dir / ENCODER_CONFIG).read_text())
    model = build_model(record["spec"], encoder_dir=None, encoder_config=encoder_config, k=s["k"],
                        head_hidden=s["head_hidden"], dropout=s["dropout"], pooling=s["pooling"],
                        seq_length=s["seq_length"], use_energy=s["use_energy"])
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise InputError(path, f"cannot read the member's weights: {e}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise InputError(path, f"weights do not fit method {record['method']} as its method.json builds it: "
                               f"{str(e).splitlines()[0]}") from None
    return model.eval()
