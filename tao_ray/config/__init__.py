"""Recipes: the typed `Recipe` (sections.py), loaded from YAML with line numbers and dotted overrides (loading.py)
and checked field by field and across fields (validation.py). May import core/ only (for the registries whose
names a recipe may use); never Ray, a model or a prompt file."""

from tao_ray.config.loading import load_recipe, locate
from tao_ray.config.sections import (
    DataSection,
    EvalSection,
    FunctionOptions,
    GenerationSection,
    HttpOptions,
    JudgeOptions,
    LoggingSection,
    LoraSection,
    ModelSection,
    Recipe,
    ResourcesSection,
    RewardModelOptions,
    RunSection,
    ScoringSection,
    SqlOptions,
    TrainingSection,
)
from tao_ray.config.validation import CHOICES, REQUIRED, get, validate

__all__ = ["CHOICES", "REQUIRED", "DataSection", "EvalSection", "FunctionOptions", "GenerationSection", "HttpOptions",
           "JudgeOptions", "LoggingSection", "LoraSection", "ModelSection", "Recipe", "ResourcesSection",
           "RewardModelOptions", "RunSection", "ScoringSection", "SqlOptions", "TrainingSection", "get",
           "load_recipe", "locate", "validate"]
