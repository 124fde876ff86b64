# What all branches share: the import path of the omicslm package, and the rerun key of a step.
import os

# Jobs import the omicslm package from this checkout, also inside --sdm conda environments
# (which hold only its dependencies) and on cluster nodes that inherit the environment.
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p))


DOWNLOAD_SHA256 = config["downloads"]["sha256"]


def download_sha256(requirement):
    """The pinned sha256 of a fetched archive (config downloads.sha256); a clear error when none is pinned."""
    if requirement not in DOWNLOAD_SHA256:
        raise ValueError(f"downloads.sha256 pins no hash for {requirement!r}: add it (pip download --no-deps "
                         f"{requirement} -d /tmp/x && sha256sum /tmp/x/*) so the fetched file can be checked")
    return DOWNLOAD_SHA256[requirement]


def settings_above(step, settings, parents):
    """The settings of every step above ``step``: its rule's one rerun key, ``made_with`` (no script reads it).

    Why every step has one. Snakemake removes a job's outputs when it starts and, where it keeps no
    record of them, does not go back for a missing intermediate whose downstream files exist. So a
    step killed mid-run after an edit (a split after a seed change, a training job after a new
    learning rate) would leave every later file of the old settings standing. With the settings of
    all the steps above it in a param, each later step sees the change itself and the chain is redone.

    ``settings`` maps a step to the config it is made with, by config name (``{"impute.split": ...}``);
    ``parents`` maps a step to the steps whose outputs it reads. A setting that several ancestors
    share appears once; the ones ``step`` is made with itself are its other params and are left out,
    so no setting is listed twice in a rule. A step lists only its ancestors, so an edit reruns
    nothing that was not stale already. Each branch has its table (``IMPUTE_PARENTS``, ...).
    """
    own, out, seen, todo = settings[step] if step in settings else {}, {}, set(), list(parents[step])
    while todo:
        above = todo.pop()
        if above in seen:
            continue
        seen.add(above)
        if above in settings:  # steps made with no config (a VCF export, a table) only pass on their parents'
            out.update((name, value) for name, value in settings[above].items() if name not in own)
        todo.extend(parents[above])
    return dict(sorted(out.items()))
