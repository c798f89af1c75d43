"""Update schemes, one module each. ``SCHEMES`` maps names to classes."""

from hnntrain.schemes import (  # noqa: F401  (registration)
    crus,
    fp,
    manhattan,
    mixed_precision,
    neurosim,
    nonlinearity_aware,
    sgd,
    threshold,
    tiki_taka,
    unidirectional,
)
from hnntrain.schemes.base import (
    SCHEMES,
    SchemeContext,
    UpdateScheme,
    parse_options,
    register,
    stochastic_round,
)

__all__ = ["SCHEMES", "SchemeContext", "UpdateScheme", "build_scheme", "parse_options", "register", "stochastic_round"]


def get_scheme(name: str) -> type[UpdateScheme]:
    from hnntrain.spec.config import ConfigError

    if name not in SCHEMES:
        raise ConfigError("scheme.name", f"unknown scheme {name!r}; choose one of {', '.join(sorted(SCHEMES))}")
    return SCHEMES[name]


def check_scheme(name: str, params: dict) -> None:
    """ConfigError for an unknown scheme or an unknown or invalid option (no arrays needed)."""
    cls = get_scheme(name)
    parse_options(cls.Options, params)


def build_scheme(name: str, params: dict, array, ctx: SchemeContext) -> UpdateScheme:
    cls = get_scheme(name)
    return cls(parse_options(cls.Options, params), array, ctx)
