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
            voice=self.voice, model=self.model, temperature=self.temperature, modalities=self.modalities
        )

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
) -> None:
    """Raise ``ConfigurationError`` for a value the Orga API would refuse."""
    if voice is not None and voice not in VOICES:
        raise ConfigurationError(f"unknown voice {voice!r}; choose one of {', '.join(VOICES)}")
    if model is not None and model not in MODELS:
        raise ConfigurationError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if temperature is not None and not (0.0 <= float(temperature) <= 1.0):
        raise ConfigurationError(f"temperature must be within [0, 1], got {temperature}")
    if modalities is not None:
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities:
            raise ConfigurationError(f"modalities must be a non-empty subset of {MODALITIES}, got {list(modalities)}")
