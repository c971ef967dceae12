"""The training engine: recipes (:mod:`.recipe`), tasks (:mod:`.task`, :mod:`.tasks`), one trainer
(:mod:`.trainer`), checkpoints (:mod:`.checkpoint`) and distributed helpers (:mod:`.distributed`).

Programmatic use::

    from leannets.engine import train, evaluate_checkpoint
    result = train("densenet_cifar10", overrides={"train.epochs": 1}, out_dir="runs/x")
    result["final"]["eval_acc1"], result["checkpoint"]
"""
from .recipe import Field, load_recipe, register_keys, stage_configs
from .task import Task, create_task, get_task_class, list_tasks, register_task

__all__ = ["Field", "Task", "create_task", "evaluate_checkpoint", "get_task_class", "list_tasks", "load_recipe",
           "register_keys", "register_task", "stage_configs", "train"]


def train(recipe=None, overrides=None, out_dir=None, **kwargs):  # noqa: ANN001, ANN201
    """Run a recipe (path, bundled name or dict); see :func:`leannets.engine.trainer.train`."""
    from .trainer import train as _train

    return _train(recipe, overrides=overrides, out_dir=out_dir, **kwargs)


def evaluate_checkpoint(path, **kwargs):  # noqa: ANN001, ANN201
    """Evaluate a saved checkpoint; see :func:`leannets.engine.trainer.evaluate_checkpoint`."""
    from .trainer import evaluate_checkpoint as _eval

    return _eval(path, **kwargs)
