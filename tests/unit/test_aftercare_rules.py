"""The aftercare rules without AWS: what counts as a difference, and what a person is shown."""

from __future__ import annotations

from bot.aftercare.rules import LABELS, CouldNotCheck, compare

SAME = {
    "pitr": {"enabled": True, "days": 35},
    "ttl": {"enabled": True, "attribute": "expires"},
    "tags": {"team": "music"},
    "streams": {"enabled": False, "view": None},
    "deletion_protection": False,
    "autoscaling": {},
    "contributor_insights": "DISABLED",
}


def by_name(aspects):
    return {a.name: a for a in aspects}


def test_a_copy_that_matches_differs_in_nothing():
    aspects = compare(SAME, dict(SAME))
    assert [a.name for a in aspects] == list(LABELS)
    assert not any(a.differs for a in aspects)


def test_what_a_restore_leaves_out_is_a_difference_shown_in_words():
    restored = SAME | {
        "pitr": {"enabled": False, "days": None},
        "ttl": {"enabled": False, "attribute": None},
        "tags": {},
    }
    aspects = by_name(compare(SAME, restored))
    assert aspects["pitr"].differs and (aspects["pitr"].source, aspects["pitr"].target) == (
        "on (35 days)",
        "off",
    )
    assert aspects["ttl"].differs and aspects["ttl"].source == "on (attribute `expires`)"
    assert aspects["tags"].differs and aspects["tags"].target == "none"
    assert not aspects["streams"].differs


def test_extra_protection_or_tags_on_the_copy_are_not_differences():
    restored = SAME | {"tags": {"team": "music", "pitr-bot:extra": "1"}}
    source = SAME | {"pitr": {"enabled": False, "days": None}}
    aspects = by_name(compare(source, restored))
    assert not aspects["tags"].differs
    assert not aspects["pitr"].differs  # the copy is protected, the source is not


def test_an_aspect_that_could_not_be_read_is_reported_not_guessed():
    restored = SAME | {"contributor_insights": CouldNotCheck("DescribeContributorInsights failed")}
    aspect = by_name(compare(SAME, restored))["contributor_insights"]
    assert aspect.differs is None
    assert (aspect.source, aspect.target) == ("?", "?")
    assert "DescribeContributorInsights" in aspect.note
