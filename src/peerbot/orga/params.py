"""Session parameters sent in the ``calls`` body, validated before any request."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigurationError

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer")
MODELS = ("orga-1-beta",)
MODALITIES = ("audio", "video")


@dataclass(frozen=True)
class SessionParams:
    """The ``params`` of a realtime call, with the official SDK's defaults."""

    voice: str = "alloy"
    model: str = "orga-1-beta"
    temperature: float = 0.5
    return_transcription: bool = False
    instructions: str | None = None
    modalities: tuple[str, ...] = field(default=MODALITIES)
    history: bool = True

    def __post_init__(self) -> None:
        validate_params(
            voice=self.voice, model=self.model, temperature=self.temperature, modalities=self.modalities,
            instructions=self.instructions,
        )
        for name in ("return_transcription", "history"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def to_json(self) -> dict[str, Any]:
        """The JSON object for the ``params`` field."""
        body = asdict(self)
        body["modalities"] = list(self.modalities)
        return body


def validate_params(
    *,
    voice: str | None = None,
    model: str | None = None,
    temperature: float | None = None,
    modalities: tuple[str, ...] | list[str] | None = None,
    instructions: str | None = None,
) -> None:
    """Raise ``ConfigurationError`` for a value the Orga API would refuse (None: not given)."""
    if voice is not None and (not isinstance(voice, str) or voice not in VOICES):
        raise ConfigurationError(f"unknown voice {voice!r}; choose one of {', '.join(VOICES)}")
    if model is not None and (not isinstance(model, str) or model not in MODELS):
        raise ConfigurationError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not 0.0 <= temperature <= 1.0):  # NaN fails the comparison too
        raise ConfigurationError(f"temperature must be a number within [0, 1], got {temperature!r}")
    if instructions is not None and not isinstance(instructions, str):
        raise ConfigurationError(f"instructions must be a string, got {type(instructions).__name__}")
    if modalities is not None:
        if isinstance(modalities, str) or not isinstance(modalities, (tuple, list)):
            raise ConfigurationError(f"modalities must be a non-empty subset of {MODALITIES}, got {modalities!r}")
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities:
            raise ConfigurationError(f"modalities must be a non-empty subset of {MODALITIES}, got {list(modalities)}")
