"""Chinese word segmentation (jieba), one private tokenizer per use, so the words one part
adds (routing's keywords, the bulletin's hotline words) never change another's counts; and
the text made plain before it is cut (Simplified script, OCR's spaces gone)."""

from __future__ import annotations

import functools
import logging
import re
import threading
import warnings
from collections.abc import Iterable
from typing import Any

# Spaces a fax's OCR puts between Chinese characters ("投 诉"): no word has them.
_SPACED_HAN = re.compile(r"(?<=[\u3400-\u9fff])[ \t\u3000]+(?=[\u3400-\u9fff])")


@functools.cache
def _t2s() -> Any:
    """OpenCC's Traditional-to-Simplified converter, built once (10 ms)."""
    from opencc import OpenCC

    return OpenCC("t2s")


# Converting costs about 9 ms per 1,500 characters (1 ms per 150), and routing reads a
# letter's text three times (its words, its district, its rules): converted once.
@functools.lru_cache(maxsize=256)
def simplified(text: str) -> str:
    """The text in Simplified characters, OCR's spaces between characters taken out: a Big5
    mail's 路燈 and a fax's "路 灯" are the 路灯 the city's word lists name."""
    return _SPACED_HAN.sub("", _t2s().convert(text))


def _jieba() -> Any:
    """jieba, imported when words are first cut: with pkg_resources it costs a command
    that never cuts words (`hotline letters list`) a fifth of a second."""
    with warnings.catch_warnings():
        # jieba 0.42 has invalid escapes in its regexes (warned when its bytecode is
        # compiled) and imports pkg_resources, deprecated by recent setuptools.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
        import jieba
    jieba.setLogLevel(logging.WARNING)  # it logs each dictionary load to stderr
    return jieba


class Segmenter:
    def __init__(self, words: Iterable[str] = ()) -> None:
        self._words = list(words)
        self._tokenizer: Any = None
        self._lock = threading.Lock()  # jieba's lazy dictionary load is not thread-safe

    def cut(self, text: str) -> list[str]:
        with self._lock:
            if self._tokenizer is None:
                tokenizer = _jieba().Tokenizer()
                tokenizer.initialize()
                for word in self._words:
                    # So that 路灯 or 翠屏区 come out as one word, whatever the dictionary says.
                    tokenizer.add_word(word, freq=100_000)
                self._tokenizer = tokenizer
            return [w for w in self._tokenizer.lcut(text) if w.strip()]
