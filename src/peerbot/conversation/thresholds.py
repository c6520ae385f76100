"""``--assert`` on a conversation summary, in the threshold language of call quality
(:mod:`peerbot.quality.thresholds`: ``NAME OP VALUE[UNIT]``, the same operators, units and
messages) over the conversation's names (:data:`~peerbot.conversation.results.SUMMARY_METRICS`):

- over the turns, each with ``_p50 _p95 _min _max _mean`` (none: the mean): ``v2v`` (``v2v_ms``,
  voice to voice), ``response`` (``response_s``, answer duration), ``barge_in_stop``
  (``barge_in_stop_ms``), e.g. ``v2v_p95<=1500ms``, ``barge_in_stop_p95<=500ms``;
- counts: ``turns``, ``turns_failed``, ``expectations``, ``expectations_failed``, ``barge_ins``,
  ``barge_ins_not_stopped``, ``updates_failed``, ``conversations``, ``conversations_failed``
  (``turns_failed==0``).
"""

from __future__ import annotations

import argparse

from ..errors import ConfigurationError
from ..quality.thresholds import Threshold, Vocabulary
from .results import OVER_TURNS, SUMMARY_METRICS

__all__ = ["CONVERSATION", "conversation_threshold", "parse_threshold"]

CONVERSATION = Vocabulary(SUMMARY_METRICS, {"v2v": "v2v_ms", "response": "response_s",
                                            "barge_in_stop": "barge_in_stop_ms"},
                          example="v2v_p95<=1500ms")
"""The names a conversation threshold may use."""


def parse_threshold(text: str) -> Threshold:
    """A threshold on a conversation summary; ``ConfigurationError`` saying what is wrong."""
    threshold = CONVERSATION.parse(text)
    base = CONVERSATION.base(threshold.key)
    if base not in OVER_TURNS and threshold.key != base:
        raise ConfigurationError(f"threshold {text!r}: {base} is a count; it takes no statistic suffix")
    return threshold


def conversation_threshold(text: str) -> Threshold:
    """argparse type of ``peerbot converse --assert``: a bad expression is a usage error (exit 2)."""
    try:
        return parse_threshold(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
