"""The training engine: recipes (:mod:`.recipe`), tasks (:mod:`.task`, :mod:`.tasks`), one trainer
(:mod:`.trainer`), checkpoints (:mod:`.checkpoint`) and distributed helpers (:mod:`.distributed`).

Programmatic use::

    from leannets.engine import train, evaluate_checkpoint
    result = train("densenet_cifar10", overrides={"train.epochs": 1}, out_dir="runs/x")
    result["final"]["eval_acc1"], result["checkpoint"]
"""
from leannets.config import Field, Recipe, StageConfig

from .recipe import load_recipe, register_keys, stage_configs
from .task import Task, create_task, get_task_class, list_tasks, register_task
from .trainer import evaluate_checkpoint, train

__all__ = ["Field", "Recipe", "StageConfig", "Task", "create_task", "evaluate_checkpoint", "get_task_class",
           "list_tasks", "load_recipe", "register_keys", "register_task", "stage_configs", "train"]
