"""The base of every config model in both apps: strict about what a YAML value may be.

- `strict`: a value must already have the field's type: `interval_s: true` is not 1,
  `timeout_s: "5"` is not 5, `wait_for_sync: 1` is not true. An integer is a valid float.
  Paths are written as strings, so path fields use `PathField` (lax).
- `allow_inf_nan=False`: `.nan` and `.inf` are refused ("a finite number").
- `extra="forbid"`: an unknown key (a typo) is an error.

`validate(model, data, where, document)` validates and turns every error into a
`file:line: key: problem` line (ProblemsError).

`no_inline_secret(key, file_key, credential_key)` is the one rule for a secret in a config:
it is never written there, only a file or a systemd credential holding it is named.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from homewatt_common.problems import Loc, ProblemsError, validation_problems
from homewatt_common.yamlfile import YamlDocument

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
Model = TypeVar("Model", bound=BaseModel)


class ConfigModel(BaseModel):
    model_config = STRICT


def PathField(default: Any = None, **kwargs: Any) -> Any:
    """A path field: written as a string in YAML, so not strict."""
    return Field(default, strict=False, **kwargs)


def no_inline_secret(key: str, file_key: str, credential_key: str) -> Any:
    """A before-validator for a model holding a secret: refuses `key` written in the config
    with one message naming `key`, `file_key` (a file, mode 0600) and `credential_key` (a
    systemd credential, LoadCredential=), and never the value. Assign it in the class body:
    `_no_inline_token = no_inline_secret("token", "token_file", "token_credential")`.

    Only the written secret is refused: whether `file_key` and `credential_key` may both be
    set, or neither, is the model's own rule (an after-validator)."""
    message = (
        f"{key} must not be written in the config file: put the secret in a file named by"
        f" {file_key} (mode 0600) or in a systemd credential named by {credential_key}"
        " (LoadCredential=)"
    )

    def refuse(cls: Any, data: Any) -> Any:
        if isinstance(data, dict) and key in data:
            raise ValueError(message)
        return data

    return model_validator(mode="before")(refuse)


def validate(
    model: type[Model],
    data: Any,
    where: str,
    document: YamlDocument | None = None,
    *,
    union_tags: Collection[str] = (),
    rename: Callable[[Loc], str] | None = None,
    example: str = "the example config",
) -> Model:
    """`data` as a `model`; ProblemsError with one `file:line: key: problem` per error
    (problems.validation_problems says what `union_tags` and `rename` do)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProblemsError(
            validation_problems(
                exc, where, document, union_tags=union_tags, rename=rename, example=example
            )
        ) from None
