"""What a StackExchange row owes its post: the post's CC BY-SA version, a link to it, and
its author's name as the dump gives it (see the package and ``docs/corpus-spec.md``).

StackExchange licenses content post by post. Dumps since 2019 state each post's licence
in its ``ContentLicense`` attribute; older dumps do not, and the version then follows
from the post's dates and StackExchange's published licence changes: CC BY-SA 2.5 until
2011-04-07, 3.0 from 2011-04-08, 4.0 from 2018-05-02 (a post edited after a change is
re-licensed under the later licence). The post that decides is the one whose text the
row holds: the question for stackexchange_title_body and
stackexchange_duplicate_questions (the question whose title is the anchor), the answer
for stackexchange_title_answer.
"""
from __future__ import annotations

from datetime import date

# ContentLicense values of the dumps; any other value is a reject, never a guess.
CONTENT_LICENCES = {"CC BY-SA 2.5": "cc-by-sa-2.5", "CC BY-SA 3.0": "cc-by-sa-3.0",
                    "CC BY-SA 4.0": "cc-by-sa-4.0"}
# StackExchange's licence changes, latest first: a post dated on or after the day (UTC)
# is under that licence.
LICENCE_CHANGES = ((date(2018, 5, 2), "cc-by-sa-4.0"), (date(2011, 4, 8), "cc-by-sa-3.0"))
FIRST_LICENCE = "cc-by-sa-2.5"
# The attributes of Posts.xml these rules read.
ATTRIBUTION_FIELDS = ("CreationDate", "LastEditDate", "ContentLicense", "OwnerUserId", "OwnerDisplayName")


def licence_by_content_licence(value: str) -> str | None:
    """The licence id a ``ContentLicense`` attribute states (``CC BY-SA 4.0`` ->
    ``cc-by-sa-4.0``), or ``None`` for a value that is not one of the three versions."""
    return CONTENT_LICENCES.get(value.strip())


def licence_by_date(day: date) -> str:
    """The licence of a post last written on ``day`` (UTC): 2.5 before 2011-04-08, 3.0 from
    that day, 4.0 from 2018-05-02."""
    for since, licence in LICENCE_CHANGES:
        if day >= since:
            return licence
    return FIRST_LICENCE


def licensing_day(creation_date: str | None, last_edit_date: str | None) -> date:
    """The day that decides a post's licence: the later of its ``LastEditDate`` and
    ``CreationDate`` (``YYYY-MM-DDTHH:MM:SS.fff``, UTC). ``ValueError`` when there is no
    ``CreationDate`` or a date present is not a date."""
    if not creation_date:
        raise ValueError("no ContentLicense and no CreationDate")
    days = []
    for name, value in (("CreationDate", creation_date), ("LastEditDate", last_edit_date)):
        if value is None:
            continue
        try:
            days.append(date.fromisoformat(value[:10]))
        except ValueError:
            raise ValueError(f"no ContentLicense, and {name} {value[:40]!r} is not a date") from None
    return max(days)


def post_licence(attrs: dict) -> tuple[str | None, str | None]:
    """A post's licence id: its ``ContentLicense`` when it has one, else by its dates
    (:func:`licensing_day`, :func:`licence_by_date`).

    Returns:
        ``(licence, None)``, or ``(None, why)`` when the licence cannot be told: an unknown
        ``ContentLicense`` value, or no usable date.
    """
    stated = attrs.get("ContentLicense")
    if stated is not None:
        licence = licence_by_content_licence(stated)
        if licence is None:
            return None, f"ContentLicense {stated[:60]!r} is not CC BY-SA 2.5, 3.0 or 4.0"
        return licence, None
    try:
        return licence_by_date(licensing_day(attrs.get("CreationDate"), attrs.get("LastEditDate"))), None
    except ValueError as exc:
        return None, str(exc)


def post_author(attrs: dict) -> str | None:
    """A post's author as the dump gives it: ``OwnerDisplayName`` (a deleted user's name,
    kept on their posts), else ``user <OwnerUserId>``, whose profile is
    ``https://<site>/users/<OwnerUserId>`` (Posts.xml has no names of current users;
    Users.xml is not read); ``None`` for a post without either."""
    name = (attrs.get("OwnerDisplayName") or "").strip()
    if name:
        return name
    user = (attrs.get("OwnerUserId") or "").strip()
    return f"user {user}" if user else None


def question_url(site: str, question_id) -> str:
    """The link to a question: ``https://<site>/q/<id>`` (the site is the dump's name for
    it, e.g. ``cstheory.meta.stackexchange.com``)."""
    return f"https://{site}/q/{question_id}"


def answer_url(site: str, answer_id) -> str:
    """The link to an answer: ``https://<site>/a/<id>``."""
    return f"https://{site}/a/{answer_id}"
