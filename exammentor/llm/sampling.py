"""How a model call samples: greedy by default; a retry round changes the seed, raises the
temperature and penalises repetition, so a weak model does not repeat the answer that failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict


class SamplingArgs(TypedDict, total=False):
    """Keyword arguments of ``chat.completions.create`` that :class:`Sampling` sets."""

    temperature: float
    seed: int
    frequency_penalty: float
    presence_penalty: float
    extra_body: dict[str, float]


@dataclass(frozen=True)
class Sampling:
    """How the model samples one call.

    A small model at temperature 0 answers a repeated prompt with the same tokens, so a retry
    that changes nothing gets the same loop or the same invalid JSON back. A retry round asks
    with :meth:`for_round`, which raises the temperature, changes the seed and penalises
    repetition. ``frequency_penalty``, ``presence_penalty`` and ``seed`` are OpenAI
    parameters; ``repeat_penalty`` and ``dry_multiplier`` (the DRY sampler) are llama.cpp's,
    sent only when ``LLMSettings.sampler_extras`` allows it, since OpenAI itself refuses
    parameters it does not know.
    """

    temperature: float = 0.0
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repeat_penalty: float | None = None
    dry_multiplier: float | None = None

    def for_round(self, round_no: int) -> Sampling:
        """The sampling of retry round ``round_no`` (1 is the first call: ``self``).

        Later rounds sample more freely (temperature 0.6, then 0.8, ...; never above 1.0),
        with seed ``round_no`` and penalties on repeated tokens, so a degenerate first answer
        is not simply repeated.

        Args:
            round_no: 1 for the first call, 2 for the first retry, ...

        Returns:
            The sampling to use.
        """
        if round_no <= 1:
            return self
        return Sampling(
            temperature=max(self.temperature, min(1.0, 0.4 + 0.2 * (round_no - 1))),
            seed=round_no if self.seed is None else self.seed + round_no,
            frequency_penalty=self.frequency_penalty or 0.5,
            presence_penalty=self.presence_penalty,
            repeat_penalty=self.repeat_penalty or 1.25,
            dry_multiplier=self.dry_multiplier or 0.8,
        )


GREEDY = Sampling()
"""Temperature 0 and nothing else: deterministic on the embedded server."""
