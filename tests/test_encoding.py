"""exporter.encoding writes client_python's bytes, byte for byte, or lets client_python write them.

Real collections (a real PostgreSQL, the memory files, the golden scenarios)
and constructed families at the edges of both formats, each encoded by this
module and by client_python 0.26 and compared as bytes.
"""

from __future__ import annotations

import enum
import math
import random
import struct
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harness import Database, Ticks, samples
from prometheus_client import generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.samples import Exemplar, Sample, Timestamp
from prometheus_client.utils import floatToGoString

from exporter import encoding
from exporter.cache import SnapshotCache
from exporter.collection import CollectionResult
from exporter.collector import GovernanceCollector
from exporter.connections import open_pool
from exporter.declaration import NodeDeclaration
from exporter.demo import scenario
from exporter.encoding import (
    FixedFamilies,
    Layouts,
    covers,
    encode_openmetrics,
    encode_text,
    encoder_for,
)
from exporter.exposition import ExpositionCache, collection_families
from exporter.memory_collector import MemoryCollector
from exporter.settings import FEBRUARY_CHARTERS
from exporter.snapshot import SCHEMA_2026_03
from exporter.source import Source

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 2, 15, 12, 7, tzinfo=UTC)
BALANCE = "governance_credit_balance_credits"
HEARTBEAT = "run_at: 2026-02-15T12:00Z\ndecision: no-op\nno_op_reason: wip_full\n"

# Accept headers this module encodes for itself: what choose_encoder makes of them.
COVERED = [
    "",
    "text/plain; version=0.0.4; charset=utf-8",
    "text/plain;version=1.0.0",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0; charset=utf-8",
    "application/openmetrics-text;version=1.0.0;escaping=underscores",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text;version=2.0.0",
    # Prometheus 2's default, then Prometheus 3's.
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
]
# Left to client_python: escapings this module does not write.
NOT_COVERED = [
    "text/plain;version=1.0.0;escaping=dots",
    "text/plain;version=1.0.0;escaping=values",
    "application/openmetrics-text;version=1.0.0;escaping=dots",
    "application/openmetrics-text;version=1.0.0;escaping=values",
]
ESCAPINGS = [encoding.UNDERSCORES, encoding.ALLOW_UTF8]


def client_bytes(accept: str, families: Sequence[Metric]) -> bytes:
    chosen, _ = choose_encoder(accept)
    return chosen(FixedFamilies(families))


def client_text(families: Sequence[Metric], escaping: str) -> bytes:
    return generate_latest(FixedFamilies(families), escaping=escaping)


def client_openmetrics(families: Sequence[Metric], escaping: str) -> bytes:
    return openmetrics.generate_latest(FixedFamilies(families), escaping=escaping)


def assert_same_everywhere(families: Sequence[Metric], layouts: Layouts | None = None) -> None:
    """Both formats, both escapings, and every Accept header: client_python's bytes,
    with line starts written afresh and (a second time) from ``layouts``."""
    layouts = layouts or Layouts()
    for _ in range(2):
        for escaping in ESCAPINGS:
            text = encode_text(families, layouts, escaping)
            assert text == client_text(families, escaping), escaping
            om = encode_openmetrics(families, layouts, escaping)
            assert om == client_openmetrics(families, escaping), escaping
        for accept in COVERED + NOT_COVERED:
            chosen, _ = choose_encoder(accept)
            expected = chosen(FixedFamilies(families))
            assert encoder_for(chosen)(families) == expected, accept
            assert encoder_for(chosen, layouts)(families) == expected, accept


# --- real collections ------------------------------------------------------------------


class Collection:
    """The exporter's families over one database, as ``build_app`` puts them together."""

    def __init__(self, url: str, memory: Path | None = None) -> None:
        self.pool = open_pool(url, max_size=1, timeout_seconds=1)
        source = Source(
            self.pool,
            account="cogni_system",
            rls_user_id=scenario.SYSTEM_USER_ID,
            window_seconds=86400,
            timeout_seconds=1,
            max_charters=50,
        )
        # Cached for an hour of ``ticks``: the encodings below are of one collection
        # until a test moves the clock.
        self.ticks = Ticks()
        self.snapshots = SnapshotCache(
            source, cache_seconds=3600, clock=lambda: NOW, monotonic=self.ticks
        )
        others = [MemoryCollector(memory, FEBRUARY_CHARTERS)] if memory is not None else []
        build = collection_families(
            GovernanceCollector(self.snapshots, NodeDeclaration(FEBRUARY_CHARTERS)), others
        )
        # Built once per collection, as ExpositionCache does: the memory files'
        # families are read when they are built (their ages change between two reads).
        self._built: dict[int, list[Metric]] = {}

        def families(result: CollectionResult) -> list[Metric]:
            if id(result) not in self._built:
                self._built[id(result)] = list(build(result))
            return self._built[id(result)]

        self.families = families
        self.exposition = ExpositionCache(self.snapshots, families)

    def built(self) -> list[Metric]:
        return self.families(self.snapshots.get())


@pytest.fixture
def collection() -> Iterator[Callable[..., Collection]]:
    opened: list[Collection] = []

    def open_collection(url: str, memory: Path | None = None) -> Collection:
        opened.append(Collection(url, memory))
        return opened[-1]

    yield open_collection
    for each in opened:
        each.pool.close()


def memory_files(tmp_path: Path) -> Path:
    memory = tmp_path / "memory"
    (memory / "GOVERN").mkdir(parents=True)
    (memory / "GOVERN" / "heartbeat.md").write_text(HEARTBEAT)
    return memory


def test_a_healthy_collection_is_byte_identical(
    make_database: Callable[[str], Database],
    collection: Callable[..., Collection],
    tmp_path: Path,
) -> None:
    database = make_database(SCHEMA_2026_03)
    with database.connect() as conn:
        scenario.seed_governance(conn, SCHEMA_2026_03, NOW, hours=3)
        scenario.seed_other_tenant(conn, SCHEMA_2026_03, 1, NOW)
    real = collection(database.monitor_url, memory_files(tmp_path))
    families = real.built()
    assert sum(len(f.samples) for f in families) > 100  # a real scrape's worth
    assert {f.type for f in families} == {"gauge", "counter", "info"}
    assert samples(encode_text(families).decode())["governance_exporter_up"] == {frozenset(): 1}
    assert_same_everywhere(families)


def test_exposition_cache_serves_client_pythons_bytes_for_every_accept(
    make_database: Callable[[str], Database],
    collection: Callable[..., Collection],
    tmp_path: Path,
) -> None:
    database = make_database(SCHEMA_2026_03)
    with database.connect() as conn:
        scenario.seed_incident(conn, SCHEMA_2026_03, NOW)
    real = collection(database.monitor_url, memory_files(tmp_path))
    families = real.built()
    for accept in COVERED + NOT_COVERED:
        body = real.exposition.body(accept, "")
        assert body.data == client_bytes(accept, families), accept
        assert body.content_type == choose_encoder(accept)[1]

    # The next collection, other values and label values, from the line starts kept.
    with database.connect() as conn:
        conn.execute("UPDATE billing_accounts SET balance_credits = 1234567")
        scenario.seed_other_tenant(conn, SCHEMA_2026_03, 2, NOW)
        scenario.add_schedule(conn, scenario.system_tenant(conn), "review", message="NEW")
    real.ticks.now += 7200
    later = real.built()
    assert later is not families
    assert samples(encode_text(later).decode())[BALANCE] == {
        frozenset({("account", "cogni_system")}): 1234567
    }
    for accept in COVERED + NOT_COVERED:
        assert real.exposition.body(accept, "").data == client_bytes(accept, later), accept


def test_the_golden_incident_is_byte_identical(
    make_database: Callable[[str], Database], collection: Callable[..., Collection]
) -> None:
    """Balance 0 and no schedule rows (2026-02-15): the golden file, from this module."""
    database = make_database("2026-02")
    with database.connect() as conn:
        scenario.create_tenant(conn, balance_credits=0)
    families = collection(database.monitor_url).built()
    assert encode_text(families).decode() == (GOLDEN / "incident-2026-02-15.prom").read_text()
    assert_same_everywhere(families)


def test_the_golden_unreachable_database_is_byte_identical(
    collection: Callable[..., Collection],
) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    families = collection(url).built()
    assert encode_text(families).decode() == (GOLDEN / "database-unreachable.prom").read_text()
    assert_same_everywhere(families)


# --- constructed families --------------------------------------------------------------

AWKWARD_VALUES = [
    "back\\slash",
    'double "quote"',
    "new\nline",
    'all \\ " \n at once\\n',
    "ünïcödé 漢字 🎉",
    "",
    "%s %d %% {}",
    "trailing backslash\\",
]
FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1 + 0.2,
    math.nan,
    math.inf,
    -math.inf,
    1e-7,
    5e-324,
    1.5e300,
    -1.5e300,
    123456.7,
    999999.9999,
    1e6,
    1234567.0,
    -1234567.0,
    1e15,
    1e16,
    -1e16,
    1e21,
    1e22,
    1.7976931348623157e308,
]
INTS = [0, 1, -5, 999_999, 1_000_000, -1_000_000, 2**53, 2**53 + 1, -(2**53) - 1, 10**22]


class Status(enum.StrEnum):
    OK = "ok"
    QUOTED = 'say "ok"'


# The older mixin on purpose: str() of a member is "OldStatus.OK", its replace() "ok".
class OldStatus(str, enum.Enum):  # noqa: UP042
    OK = "ok"


def edge_families() -> list[Metric]:
    labelled = GaugeMetricFamily(
        "edge_labels", 'Help with a back\\slash, a "quote"\nand a newline.', labels=["b", "a"]
    )
    for index, value in enumerate(AWKWARD_VALUES):
        labelled.add_metric([value, str(index)], index)
    labelled.add_metric(["same", "keys"], 1.0, timestamp=1_700_000_000.123)
    labelled.add_metric(["int", "timestamp"], 2.0, timestamp=1_700_000_000)
    labelled.add_metric(["ns", "timestamp"], 3.0, timestamp=Timestamp(1_700_000_000, 5))

    enums = GaugeMetricFamily("edge_enums", "Label values that are str enums.", labels=["s"])
    for member in (*Status, *OldStatus):
        enums.add_metric([member], 1)

    floats = GaugeMetricFamily("edge_floats", "Floats.", labels=["i"])
    for index, value in enumerate(FLOATS):
        floats.add_metric([str(index)], value)
    ints = GaugeMetricFamily("edge_ints", "Ints, and a bool.", labels=["i"])
    for index, whole in enumerate([*INTS, True, False]):
        ints.add_metric([str(index)], whole)

    names = GaugeMetricFamily("job:edge_colons:rate5m", "A recording rule's name.")
    names.add_metric([], 1)
    odd_labels = Metric("edge_label_names", "Label names a legacy name may not have.", "gauge")
    odd_labels.add_sample("edge_label_names", {"__reserved": "x", "ünï": "y", "le": "z"}, 1)
    odd_labels.add_sample("edge_label_names", {"le": "z", "__reserved": "x", "ünï": "y"}, 2)

    plain = CounterMetricFamily("edge_plain", "A counter without created.", labels=["k"])
    plain.add_metric(["a"], 3)
    created = CounterMetricFamily("edge_created", "A counter with created.", labels=["k"])
    created.add_metric(["a"], 3, created=1_700_000_000.5)
    created.add_metric(["b"], 0.5, created=1_700_000_001)
    bare = CounterMetricFamily("edge_bare_total", "Given with _total.", value=7)
    # A gauge named as the counter's created sample: that one is not moved.
    not_created = GaugeMetricFamily("edge_created_created", "Not a created sample.")
    not_created.add_metric([], 1)

    info = InfoMetricFamily("edge_build", "Build facts.", labels=["component"])
    info.add_metric(["core"], {"version": "1.2.3", "revision": 'a"b\\c'})
    info.add_metric(["ui"], {"version": ""})

    histogram = HistogramMetricFamily("edge_seconds", "A histogram.", labels=["op"], unit="seconds")
    histogram.add_metric(["read"], [("0.1", 1), ("1", 3), ("+Inf", 4)], sum_value=2.5)
    gauge_histogram = GaugeHistogramMetricFamily("edge_queue", "A gauge histogram.")
    gauge_histogram.add_metric([], [("1", 2), ("+Inf", 5)], gsum_value=7.5)
    summary = SummaryMetricFamily("edge_summary", "A summary.", count_value=3, sum_value=1.5)
    state = StateSetMetricFamily("edge_state", "A state set.", value={"on": True, "off": False})
    unknown = UnknownMetricFamily("edge_unknown", "Unknown.", value=1)

    return [
        labelled,
        enums,
        floats,
        ints,
        names,
        odd_labels,
        plain,
        created,
        not_created,
        bare,
        info,
        histogram,
        gauge_histogram,
        summary,
        state,
        unknown,
        GaugeMetricFamily("edge_empty", ""),
        CounterMetricFamily("edge_empty_counter", "No samples.\\"),
    ]


def test_edge_families_are_byte_identical() -> None:
    families = edge_families()
    assert_same_everywhere(families)
    text = encode_text(families)
    # The edges were there to be crossed.
    for escaped in (b'"back\\\\slash"', b'"double \\"quote\\""', b'"new\\nline"', b"NaN"):
        assert escaped in text
    assert b"edge_created_created{" in text
    assert b'"\xc3\xbcn\xc3\xaf"="y"' in encode_text(families, escaping=encoding.ALLOW_UTF8)


@pytest.mark.parametrize("family", edge_families(), ids=lambda f: f.name)
def test_each_edge_family_alone_is_byte_identical(family: Metric) -> None:
    assert_same_everywhere([family])


def test_more_line_starts_than_are_kept_are_still_byte_identical() -> None:
    family = GaugeMetricFamily("edge_many", "Unbounded label values.", labels=["id"])
    for index in range(encoding.MAX_TEMPLATES + 100):
        family.add_metric([f"id-{index}"], index)
    layouts = Layouts()
    for _ in range(2):
        assert encode_text([family], layouts) == client_text([family], encoding.UNDERSCORES)


def test_no_families_is_byte_identical() -> None:
    assert encode_text([]) == client_text([], encoding.UNDERSCORES) == b""
    assert encode_openmetrics([]) == client_openmetrics([], encoding.UNDERSCORES) == b"# EOF\n"


def test_values_format_as_float_to_go_string_does() -> None:
    """Ten thousand doubles of every exponent, and ints at the edges of exactness."""
    rng = random.Random(16)
    doubles = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(10_000)
    ]
    near = [rng.uniform(-2e6, 2e6) for _ in range(2_000)]
    whole = [rng.randint(-(2**60), 2**60) for _ in range(2_000)] + [
        n + d for n in (10**6, 2**53, -(2**53)) for d in (-1, 0, 1)
    ]
    family = GaugeMetricFamily("values", "Values.", labels=["i"])
    for index, value in enumerate([*FLOATS, *INTS, *doubles, *near, *whole]):
        family.add_metric([str(index)], value)
        assert encoding._go_float(value) == floatToGoString(value), value
    assert encode_text([family]) == client_text([family], encoding.UNDERSCORES)


# --- what is left to client_python -----------------------------------------------------


@pytest.mark.parametrize("accept", COVERED)
def test_the_formats_prometheus_asks_for_are_covered(accept: str) -> None:
    assert covers(choose_encoder(accept)[0])


@pytest.mark.parametrize("accept", NOT_COVERED)
def test_other_escapings_are_left_to_client_python(accept: str) -> None:
    chosen, _ = choose_encoder(accept)
    assert not covers(chosen)
    families = edge_families()
    assert encoder_for(chosen)(families) == chosen(FixedFamilies(families))
    # And its bytes are not the default escaping's, which would have been wrong here.
    ours = encode_openmetrics if "openmetrics" in accept else encode_text
    assert encoder_for(chosen)(families) != ours(families)


def test_a_utf8_metric_name_under_allow_utf8_is_left_to_client_python() -> None:
    family = GaugeMetricFamily("edge.dotted", "A UTF-8 name.", labels=["k"])
    family.add_metric(["v"], 1)
    with pytest.raises(encoding._Unsupported):
        encode_openmetrics([family], escaping=encoding.ALLOW_UTF8)
    with pytest.raises(encoding._Unsupported):
        encode_text([family], escaping=encoding.ALLOW_UTF8)
    for accept in COVERED:
        chosen, _ = choose_encoder(accept)
        assert encoder_for(chosen)([family]) == chosen(FixedFamilies([family])), accept
    om = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
    assert b'{"edge.dotted",k="v"} 1.0' in encoder_for(choose_encoder(om)[0])([family])


def test_exemplars_are_left_to_client_python() -> None:
    family = CounterMetricFamily("edge_requests", "Requests.", labels=["code"])
    family.add_sample(
        "edge_requests_total",
        {"code": "200"},
        5,
        exemplar=Exemplar({"trace_id": "abc"}, 1.0, 1_700_000_000),
    )
    with pytest.raises(encoding._Unsupported):
        encode_openmetrics([family])
    chosen, _ = choose_encoder("application/openmetrics-text")
    body = encoder_for(chosen)([family])
    assert body == chosen(FixedFamilies([family]))
    assert b'# {trace_id="abc"} 1.0' in body
    assert encoder_for(generate_latest)([family]) == generate_latest(FixedFamilies([family]))


def test_a_value_client_python_cannot_encode_raises_its_own_error() -> None:
    family = Metric("edge_broken", "A label value that is not a string.", "gauge")
    family.samples.append(Sample("edge_broken", {"k": 5}, 1.0))  # type: ignore[dict-item]
    for chosen in (generate_latest, choose_encoder("application/openmetrics-text")[0]):
        with pytest.raises(AttributeError):
            chosen(FixedFamilies([family]))
        with pytest.raises(AttributeError):
            encoder_for(chosen)([family])
