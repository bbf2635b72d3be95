"""Encodes metric families to the bytes client_python's encoders give, in a fraction of the time.

client_python 0.26 validates and escapes every label name of every sample, and
the metric name of every sample, with a regular expression each time. The
exporter's families have fixed label names, so here each distinct sample name
and set of label names is escaped once per family, with client_python's own
``escape_metric_name`` and ``escape_label_name``, into a line template; a
sample then costs its label values (escaped only when they hold a backslash,
a double quote or a newline), its value and a ``%``.

Covered: what ``choose_encoder`` returns for the text format (0.0.4, or 1.0.0)
and for OpenMetrics (any version: it only changes native histograms, which are
not covered), with ``underscores`` escaping (the default) or ``allow-utf-8``
(what Prometheus 3 asks for) as long as every sample name is a legacy one.
Any other choice (``dots`` or ``values`` escaping), and any family this module
does not reproduce exactly (exemplars, native histograms, a value or label that
is not what client_python expects), is encoded by client_python's encoder
itself: other bytes never go out. tests/test_encoding.py holds the two byte for
byte.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import exposition as text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Encoder = Callable[[Collector], bytes]
"""client_python's encoder, as ``choose_encoder`` returns it."""

Encode = Callable[[Sequence[Metric]], bytes]

UNDERSCORES = openmetrics.UNDERSCORES
ALLOW_UTF8 = openmetrics.ALLOWUTF8
ESCAPINGS = (UNDERSCORES, ALLOW_UTF8)

# The text format shows some types under another name (and info families with
# an ``_info`` suffix, counters with ``_total``), as client_python does.
_TEXT_TYPES = {
    "info": "gauge",
    "stateset": "gauge",
    "gaugehistogram": "histogram",
    "unknown": "untyped",
}
_TEXT_SUFFIXES = {"counter": "_total", "info": "_info"}

# Samples the text format moves out of their family into a gauge family of
# their own, emitted after it in this (sorted) order.
_MOVED_SUFFIXES = ("_created", "_gcount", "_gsum")

_INF = float("inf")
# Below 2**53 an int is exact as a float, and below 1e16 Python's repr of that
# float is the int's digits and ".0"; from 1e6 up Go's formatting (which
# floatToGoString imitates) switches to an exponent.
_EXACT_INT = 2**53
_GO_EXPONENT = 1_000_000

_NOT_LABEL_RUNE = re.compile(r"[^a-zA-Z0-9_]")
_LEGACY_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class _Unsupported(Exception):
    """A family this module leaves to client_python."""


class FixedFamilies:
    """A collector over families already built, for client_python's encoders."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def encoder_for(chosen: Encoder) -> Encode:
    """An encoder of families giving the bytes ``chosen`` (from ``choose_encoder``) gives."""
    fast = _fast_encoder(chosen)

    def encode(families: Sequence[Metric]) -> bytes:
        if fast is not None:
            # What this module cannot encode, client_python encodes (or raises its own error).
            with contextlib.suppress(Exception):
                return fast(families)
        return chosen(FixedFamilies(families))

    return encode


def covers(chosen: Encoder) -> bool:
    """Whether this module encodes for ``chosen`` itself (else client_python does)."""
    return _fast_encoder(chosen) is not None


def _fast_encoder(chosen: Encoder) -> Encode | None:
    if chosen is text_format.generate_latest:
        return encode_text
    if not isinstance(chosen, functools.partial) or chosen.args:
        return None
    keywords: dict[str, Any] = chosen.keywords
    escaping = keywords.get("escaping", UNDERSCORES)
    if escaping not in ESCAPINGS:
        return None
    if chosen.func is text_format.generate_latest and set(keywords) <= {"escaping"}:
        return functools.partial(encode_text, escaping=escaping)
    version = keywords.get("version", "1.0.0")
    if (
        chosen.func is openmetrics.generate_latest
        and set(keywords) <= {"escaping", "version"}
        and isinstance(version, str)
    ):
        return functools.partial(encode_openmetrics, escaping=escaping)
    return None


# --- values ---------------------------------------------------------------------------


def _go_float(value: float) -> str:
    """``floatToGoString``, without its work for the common values."""
    kind = type(value)
    if kind is float:
        if -_INF < value < _GO_EXPONENT:  # finite, and no exponent for Go: repr as is
            return repr(value)
    elif kind is int and -_EXACT_INT <= value < _GO_EXPONENT:
        return f"{value}.0"
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _escape_value(value: str) -> str:
    if type(value) is str:
        if "\\" in value or '"' in value or "\n" in value:
            return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return value
    # A str subclass (the memory files' statuses are enums): client_python writes
    # what its ``replace`` returns, which is a plain str; anything else is left to it.
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    if type(escaped) is not str:
        raise _Unsupported(value)
    return escaped


# --- names and line templates ------------------------------------------------------------


def _openmetrics_sample_name(name: str) -> str:
    """What client_python 0.26's OpenMetrics encoder writes for a sample name.

    It replaces every character that may not stand in a label name (``:``
    included, though a metric name may hold it) with ``_``.
    """
    escaped = _NOT_LABEL_RUNE.sub("_", name)
    if escaped[:1].isdigit():
        escaped = "_" + escaped[1:]
    return escaped


def _text_sample_name(name: str) -> str:
    return openmetrics.escape_metric_name(name, UNDERSCORES)


def _legacy_sample_name(name: str) -> str:
    """A sample name under ``allow-utf-8``, in either format: a legacy name as it is.

    Other names client_python writes inside the braces; that is left to it.
    """
    if _LEGACY_METRIC_NAME.fullmatch(name) is None:
        raise _Unsupported(name)
    return openmetrics.escape_metric_name(name, ALLOW_UTF8)


class _Templates:
    """Line templates of one family: its sample names and label names escaped once."""

    def __init__(self, sample_name: Callable[[str], str], escaping: str) -> None:
        self._sample_name = sample_name
        self.escaping = escaping
        self._label_names: dict[str, str] = {}
        self._found: dict[tuple[str, ...], tuple[str, tuple[str, ...]]] = {}

    def get(self, name: str, labels: dict[str, str]) -> tuple[str, tuple[str, ...]]:
        """A ``%`` template for the line's start (up to the value) and the label keys it takes."""
        key = (name, *labels)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = self._build(name, labels)
        return found

    def _build(self, name: str, labels: dict[str, str]) -> tuple[str, tuple[str, ...]]:
        keys = tuple(sorted(labels))
        head = self._sample_name(name).replace("%", "%%")
        if not keys:
            return head + " ", keys
        pairs = ",".join(f'{self._label_name(key)}="%s"' for key in keys)
        return f"{head}{{{pairs}}} ", keys

    def _label_name(self, key: str) -> str:
        escaped = self._label_names.get(key)
        if escaped is None:
            escaped = openmetrics.escape_label_name(key, self.escaping).replace("%", "%%")
            self._label_names[key] = escaped
        return escaped


def _start(template: str, keys: tuple[str, ...], labels: dict[str, str]) -> str:
    if not keys:
        return template
    return template % tuple([_escape_value(labels[key]) for key in keys])


# --- the two formats ----------------------------------------------------------------------


def encode_text(families: Iterable[Metric], escaping: str = UNDERSCORES) -> bytes:
    """The text format, as client_python's ``generate_latest`` writes it."""
    if escaping not in ESCAPINGS:
        raise _Unsupported(escaping)
    sample_name = _text_sample_name if escaping == UNDERSCORES else _legacy_sample_name
    out: list[str] = []
    for metric in families:
        _text_family(metric, _Templates(sample_name, escaping), out)
    return "".join(out).encode("utf-8")


def _text_family(metric: Metric, templates: _Templates, out: list[str]) -> None:
    name = metric.name
    escaping = templates.escaping
    shown = openmetrics.escape_metric_name(name + _TEXT_SUFFIXES.get(metric.type, ""), escaping)
    help_text = metric.documentation.replace("\\", "\\\\").replace("\n", "\\n")
    out.append(f"# HELP {shown} {help_text}\n")
    out.append(f"# TYPE {shown} {_TEXT_TYPES.get(metric.type, metric.type)}\n")
    moved_names = {name + suffix: suffix for suffix in _MOVED_SUFFIXES}
    moved: dict[str, list[str]] = {}
    append = out.append
    for sample_name, labels, value, timestamp, exemplar, native in metric.samples:
        if exemplar is not None or native is not None:
            raise _Unsupported(metric)
        template, keys = templates.get(sample_name, labels)
        line = _start(template, keys, labels) + _go_float(value)
        if timestamp is not None:
            line += f" {int(float(timestamp) * 1000):d}"
        suffix = moved_names.get(sample_name)
        if suffix is None:
            append(line + "\n")
        else:
            moved.setdefault(suffix, []).append(line + "\n")
    for suffix in _MOVED_SUFFIXES:
        if suffix in moved:
            gauge = openmetrics.escape_metric_name(name + suffix, escaping)
            out.append(f"# HELP {gauge} {help_text}\n# TYPE {gauge} gauge\n")
            out.extend(moved[suffix])


def encode_openmetrics(families: Iterable[Metric], escaping: str = UNDERSCORES) -> bytes:
    """OpenMetrics, as client_python's OpenMetrics ``generate_latest`` writes it."""
    if escaping not in ESCAPINGS:
        raise _Unsupported(escaping)
    sample_name = _openmetrics_sample_name if escaping == UNDERSCORES else _legacy_sample_name
    out: list[str] = []
    for metric in families:
        _openmetrics_family(metric, _Templates(sample_name, escaping), out)
    out.append("# EOF\n")
    return "".join(out).encode("utf-8")


def _openmetrics_family(metric: Metric, templates: _Templates, out: list[str]) -> None:
    shown = openmetrics.escape_metric_name(metric.name, templates.escaping)
    help_text = metric.documentation.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    out.append(f"# HELP {shown} {help_text}\n# TYPE {shown} {metric.type}\n")
    if metric.unit:
        out.append(f"# UNIT {shown} {metric.unit}\n")
    append = out.append
    for sample_name, labels, value, timestamp, exemplar, native in metric.samples:
        if exemplar is not None or native is not None:
            raise _Unsupported(metric)
        template, keys = templates.get(sample_name, labels)
        line = _start(template, keys, labels)
        if value is not None:
            line += _go_float(value)
        if timestamp is not None:
            line += f" {timestamp}"
        append(line + "\n")
