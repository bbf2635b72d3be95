"""Encodes metric families to the bytes client_python's encoders give, in a fraction of the time.

client_python 0.26 validates and escapes every label name of every sample, and
the metric name of every sample, with a regular expression each time. The
exporter's families have a fixed shape, so here each family's header and each
distinct sample name with its label names become a line template once, with
client_python's own ``escape_metric_name`` and ``escape_label_name``, kept in
``Layouts`` (across collections when the caller keeps one); a sample then costs
its label values (escaped only when they hold a backslash, a double quote or a
newline), its value and a ``%``.

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

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from prometheus_client import exposition as text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Encoder = Callable[[Collector], bytes]
"""client_python's encoder, as ``choose_encoder`` returns it."""

Encode = Callable[[Sequence[Metric]], bytes]
_T = TypeVar("_T")

logger = logging.getLogger(__name__)

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
# Go's formatting (which floatToGoString imitates) writes positive values from
# 1e6 with an exponent; Python's repr from 1e16. Below 2**53 an int is exact as
# a float, and repr of that float is the int's digits and ".0".
_GO_EXPONENT = 1e6
_REPR_EXPONENT = 1e16
_EXACT_INT = 2**53

_NOT_LABEL_RUNE = re.compile(r"[^a-zA-Z0-9_]")
_LEGACY_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

# Line starts (and names, headers) kept per format and escaping: the exporter
# has a few hundred; label values without bound would get the rest written per use.
MAX_TEMPLATES = 4096


class _Unsupported(Exception):
    """A family this module leaves to client_python."""


class FixedFamilies:
    """A collector over families already built, for client_python's encoders."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


# --- choosing ----------------------------------------------------------------------------


class Layouts:
    """The line starts and family headers written so far, per format and escaping.

    Keep one for as long as the families keep their shape (the exporter's do:
    one per ``ExpositionCache``); a new one per encoding is correct, only slower.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._templates: dict[tuple[str, str], _Templates] = {}

    def templates(self, style: str, escaping: str) -> _Templates:
        with self._lock:
            found = self._templates.get((style, escaping))
            if found is None:
                found = self._templates[(style, escaping)] = _Templates(style, escaping)
            return found


def encoder_for(chosen: Encoder, layouts: Layouts | None = None) -> Encode:
    """An encoder of families giving the bytes ``chosen`` (from ``choose_encoder``) gives."""
    fast = _fast_encoder(chosen)

    def encode(families: Sequence[Metric]) -> bytes:
        if fast is not None:
            try:
                return fast(families, layouts or Layouts())
            except Exception as error:  # client_python encodes it, or raises its own error
                logger.debug("exposition left to client_python: %r", error)
        return chosen(FixedFamilies(families))

    return encode


def covers(chosen: Encoder) -> bool:
    """Whether this module encodes for ``chosen`` itself (else client_python does)."""
    return _fast_encoder(chosen) is not None


def _fast_encoder(chosen: Encoder) -> Callable[[Sequence[Metric], Layouts], bytes] | None:
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


# --- values ------------------------------------------------------------------------------


def _go_float(value: float) -> str:
    """What ``floatToGoString`` gives, without its work for ints and finite floats."""
    kind = type(value)
    if kind is float:
        if -_INF < value < _GO_EXPONENT:
            return repr(value)
        if _GO_EXPONENT <= value < _REPR_EXPONENT:
            return _go_exponent(repr(value))
        if _REPR_EXPONENT <= value < _INF:  # repr has the exponent already, as Go writes it
            return repr(value)
    elif kind is int:
        if -_EXACT_INT <= value < _GO_EXPONENT:
            return f"{value}.0"
        if _GO_EXPONENT <= value <= _EXACT_INT:
            return _go_exponent(f"{value}.0")
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]  # nan, inf, the rest
    return text


def _go_exponent(plain: str) -> str:
    """A positive float's repr without exponent ("96000000.0") as Go writes it ("9.6e+07")."""
    whole, _, fraction = plain.partition(".")
    digits = (whole + fraction).rstrip("0")
    mantissa = f"{digits[0]}.{digits[1:]}" if len(digits) > 1 else digits
    return f"{mantissa}e+{len(whole) - 1:02d}"


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


_TEXT = "text"
_OPENMETRICS = "openmetrics"
_SAMPLE_NAMES = {
    (_TEXT, UNDERSCORES): _text_sample_name,
    (_TEXT, ALLOW_UTF8): _legacy_sample_name,
    (_OPENMETRICS, UNDERSCORES): _openmetrics_sample_name,
    (_OPENMETRICS, ALLOW_UTF8): _legacy_sample_name,
}

# What a sample's line starts with (its name and labels, up to the value), by
# its family's name, its name, its label names and its label values (in the
# order its dict has them); and in the text format the suffix of a sample moved
# to a gauge of its own (``_created``, ...), else None.
_Start = tuple[str, str | None]


class _Templates:
    """Line starts and headers of one format and escaping, each written once.

    The exporter's families have bounded label values (it is the rule for any
    Prometheus metric), so whole line starts are kept; the names in them are
    escaped with client_python's functions. Label values are assumed to be str,
    or str subclasses that keep its ``replace``, ``==`` and hash (enums do).
    """

    def __init__(self, style: str, escaping: str) -> None:
        self.style = style
        self.escaping = escaping
        self._sample_name = _SAMPLE_NAMES[(style, escaping)]
        self._names: dict[str, str] = {}
        self._label_names: dict[str, str] = {}
        self.starts: dict[tuple[str, ...], _Start] = {}
        self._headers: dict[tuple[str, str, str, str], str] = {}

    def start(self, key: tuple[str, ...], family: str, name: str, labels: dict[str, str]) -> _Start:
        """The start of the line of ``key``, written (and kept while there is room)."""
        line = self._names.get(name)
        if line is None:
            line = _remember(self._names, name, self._sample_name(name))
        if labels:
            pairs = ",".join(
                f'{self._label_name(label)}="{_escape_value(value)}"'
                for label, value in sorted(labels.items())
            )
            line = f"{line}{{{pairs}}}"
        moved = None
        if self.style == _TEXT and name.startswith(family):
            moved = next((s for s in _MOVED_SUFFIXES if name == family + s), None)
        return _remember(self.starts, key, (line + " ", moved))

    def header(self, metric: Metric) -> str:
        """The family's HELP, TYPE (and in OpenMetrics UNIT) lines."""
        key = (metric.name, metric.type, metric.documentation, metric.unit)
        found = self._headers.get(key)
        if found is None:
            if self.style == _TEXT:
                found = _text_header(metric, self.escaping)
            else:
                found = _openmetrics_header(metric, self.escaping)
            _remember(self._headers, key, found)
        return found

    def _label_name(self, key: str) -> str:
        escaped = self._label_names.get(key)
        if escaped is None:
            escaped = openmetrics.escape_label_name(key, self.escaping)
            _remember(self._label_names, key, escaped)
        return escaped


def _remember(kept: dict[Any, Any], key: Any, value: _T) -> _T:
    """``value``, kept under ``key`` while ``kept`` has room."""
    if len(kept) < MAX_TEMPLATES:
        kept[key] = value
    return value


def _text_help(metric: Metric) -> str:
    return metric.documentation.replace("\\", "\\\\").replace("\n", "\\n")


def _text_header(metric: Metric, escaping: str) -> str:
    shown = openmetrics.escape_metric_name(
        metric.name + _TEXT_SUFFIXES.get(metric.type, ""), escaping
    )
    kind = _TEXT_TYPES.get(metric.type, metric.type)
    return f"# HELP {shown} {_text_help(metric)}\n# TYPE {shown} {kind}\n"


def _openmetrics_header(metric: Metric, escaping: str) -> str:
    shown = openmetrics.escape_metric_name(metric.name, escaping)
    help_text = metric.documentation.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    header = f"# HELP {shown} {help_text}\n# TYPE {shown} {metric.type}\n"
    if metric.unit:
        header += f"# UNIT {shown} {metric.unit}\n"
    return header


# --- the two formats ----------------------------------------------------------------------


_WriteFamily = Callable[[Metric, "_Templates", list[str]], None]


def encode_text(
    families: Iterable[Metric], layouts: Layouts | None = None, escaping: str = UNDERSCORES
) -> bytes:
    """The text format, as client_python's ``generate_latest`` writes it."""
    return _encode(families, layouts, escaping, style=_TEXT, write=_text_family, trailer="")


def encode_openmetrics(
    families: Iterable[Metric], layouts: Layouts | None = None, escaping: str = UNDERSCORES
) -> bytes:
    """OpenMetrics, as client_python's OpenMetrics ``generate_latest`` writes it."""
    write = _openmetrics_family
    return _encode(families, layouts, escaping, style=_OPENMETRICS, write=write, trailer="# EOF\n")


def _encode(
    families: Iterable[Metric],
    layouts: Layouts | None,
    escaping: str,
    *,
    style: str,
    write: _WriteFamily,
    trailer: str,
) -> bytes:
    if escaping not in ESCAPINGS:
        raise _Unsupported(escaping)
    templates = (layouts or Layouts()).templates(style, escaping)
    out: list[str] = []
    for metric in families:
        write(metric, templates, out)
    out.append(trailer)
    return "".join(out).encode("utf-8")


def _text_family(metric: Metric, templates: _Templates, out: list[str]) -> None:
    out.append(templates.header(metric))
    name = metric.name
    moved: dict[str, list[str]] | None = None
    starts = templates.starts
    append = out.append
    for sample_name, labels, value, timestamp, exemplar, native in metric.samples:
        if exemplar is not None or native is not None:
            raise _Unsupported(metric)
        key = (name, sample_name, *labels, *labels.values())
        line, suffix = starts.get(key) or templates.start(key, name, sample_name, labels)
        line += _go_float(value)
        if timestamp is not None:
            line += f" {int(float(timestamp) * 1000):d}"
        if suffix is None:
            append(line + "\n")
        else:
            moved = moved or {}
            moved.setdefault(suffix, []).append(line + "\n")
    if moved:
        _moved_families(metric, templates.escaping, moved, out)


def _moved_families(
    metric: Metric, escaping: str, moved: dict[str, list[str]], out: list[str]
) -> None:
    """The text format's gauges for a family's ``_created``, ``_gcount`` and ``_gsum``."""
    for suffix in _MOVED_SUFFIXES:
        if suffix in moved:
            gauge = openmetrics.escape_metric_name(metric.name + suffix, escaping)
            out.append(f"# HELP {gauge} {_text_help(metric)}\n# TYPE {gauge} gauge\n")
            out.extend(moved[suffix])


def _openmetrics_family(metric: Metric, templates: _Templates, out: list[str]) -> None:
    out.append(templates.header(metric))
    name = metric.name
    starts = templates.starts
    append = out.append
    for sample_name, labels, value, timestamp, exemplar, native in metric.samples:
        if exemplar is not None or native is not None:
            raise _Unsupported(metric)
        key = (name, sample_name, *labels, *labels.values())
        line = (starts.get(key) or templates.start(key, name, sample_name, labels))[0]
        if value is not None:
            line += _go_float(value)
        if timestamp is not None:
            line += f" {timestamp}"
        append(line + "\n")
