"""The ``tokenize`` plugin: splits text into words."""

from __future__ import annotations

import re

import plugyard

_WORD = re.compile(r"\w+(?:'\w+)*")


@plugyard.register(group="plugyard.demo", name="tokenize")
class Tokenize:
    """Split text into words, dropping spaces and punctuation."""

    def execute(self, data: str) -> list[str]:
        return _WORD.findall(data)
