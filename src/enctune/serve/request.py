"""Reading a ``/predict`` request: the body, its fields and the limits, before anything is queued.

Every fault is an ``ApiError`` (status, code, message) that the server answers as JSON. The
body is read here rather than by FastAPI, which answered a body that is not UTF-8 with a
bare 400 ``http_error`` and a body without a JSON Content-Type with a 422 about
dictionaries. Each text is checked by ``inputs.check_text`` (the predictors' own check) and
priced by the served model (``ServedModel.cost``) here, at the edge: a bad text is a 4xx
that names it, and never reaches the batcher, where it would share a model call with
other clients' texts.
"""

from __future__ import annotations

import json
import sys
import traceback
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UserError
from .inputs import check_text

if TYPE_CHECKING:
    from .server import Limits, ServedModel


class PredictRequest(BaseModel):
    """One text (``text``) or several (``texts``); pairs likewise (``text_pair`` / ``text_pairs``)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] | None = Field(None, description="Texts to predict, answered in this order.")
    text: str | None = Field(None, description="One text (instead of texts).")
    text_pairs: list[str] | None = Field(None, description="Second texts, one per text (pair models).")
    text_pair: str | None = Field(None, description="The second text for `text` (pair models).")
    questions: list[str] | None = Field(None, description="Another name for texts (extractive models).")
    question: str | None = Field(None, description="Another name for text.")
    contexts: list[str] | None = Field(None, description="Another name for text_pairs (extractive models).")
    context: str | None = Field(None, description="Another name for text_pair.")


# (list field, single field) for the first and the second text of each item (/search's request also has queries)
FIRST = (("texts", "text"), ("questions", "question"), ("queries", "query"))
SECOND = (("text_pairs", "text_pair"), ("contexts", "context"))


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message


def pick_field(req: PredictRequest, names, what: str) -> tuple[str, list[str]] | None:
    """(field name, list) of the one field given under any of ``names`` (a single string becomes a list of
    one)."""
    given = [(n, getattr(req, n)) for pair in names for n in pair if getattr(req, n, None) is not None]
    if len(given) > 1:
        raise ApiError(422, "ambiguous_input", f"give {what} once: got {', '.join(n for n, _ in given)}.")
    if not given:
        return None
    name, value = given[0]
    return (name, [value]) if isinstance(value, str) else (name, value)


@dataclass
class Parsed:
    """A request's inputs and each one's estimated tokens."""

    texts: list[str]
    pairs: list[str] | None
    costs: list[int]


def parse_request(req: PredictRequest, model: ServedModel, limits: Limits) -> Parsed:
    first = pick_field(req, FIRST, "the texts")
    second = pick_field(req, SECOND, "the text pairs")
    if first is None:
        raise ApiError(422, "missing_texts", 'nothing to predict: give "texts": [...] or "text": "...".')
    texts, pairs = first[1], None if second is None else second[1]
    if not texts:
        raise ApiError(422, "empty_texts", '"texts" is an empty list: give at least one text.')
    if len(texts) > limits.max_texts:
        raise ApiError(413, "too_many_texts", f"{len(texts)} texts in one request; the limit is {limits.max_texts} "
                                              "(split the request, or restart the server with a higher --max-texts).")
    if model.takes_pairs and pairs is None and not model.pairs_optional:
        raise ApiError(422, "missing_pairs", f"model '{model.name}' was trained on text pairs: give \"text_pairs\" "
                                             "(one per text) as well.")
    if not model.takes_pairs and pairs is not None:
        raise ApiError(422, "unexpected_pairs", f"model '{model.name}' takes single texts, not pairs: "
                                                "leave out text_pairs.")
    if pairs is not None and len(pairs) != len(texts):
        raise ApiError(422, "pair_count", f"{len(texts)} texts but {len(pairs)} text pairs; give one pair per text.")
    encoded = checked_texts(first, limits)
    encoded_pairs = checked_texts(second, limits) if second is not None else [None] * len(texts)
    costs = [model.cost(t, p) for t, p in zip(encoded, encoded_pairs, strict=True)]
    if sum(costs) > limits.max_tokens:
        raise ApiError(413, "too_many_tokens", f"the request holds about {sum(costs)} tokens (estimated: UTF-8 "
                                               f"bytes / 3, at most max_length per text); the limit is "
                                               f"{limits.max_tokens} (split the request, or restart the server "
                                               "with a higher --max-tokens).")
    return Parsed(texts, pairs, costs)


def checked_texts(field_values: tuple[str, list[str]], limits: Limits) -> list[bytes]:
    """Each text as UTF-8 bytes: a 422 naming the first that is not valid Unicode, a 413 for one too long."""
    name, values = field_values
    out = []
    for i, t in enumerate(values):
        where = f"{name}[{i}]" if name.endswith("s") else name
        if len(t) > limits.max_chars:
            raise ApiError(413, "text_too_long", f"{where} has {len(t)} characters; the limit is "
                                                 f"{limits.max_chars} (--max-chars).")
        try:
            out.append(check_text(t, where))
        except UserError as e:
            raise ApiError(422, "invalid_text", e.message) from None
    return out


JSON_TYPE = "send the body as JSON with the header 'Content-Type: application/json'"


def is_json(content_type: str | None) -> bool:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def parse_body(body: bytes, content_type: str | None, kind: type[PredictRequest] = PredictRequest) -> PredictRequest:
    """The request body as a ``PredictRequest``: 400 ``malformed_json`` for a body that is not JSON (UTF-8,
    nested no deeper than Python's recursion limit) whatever its Content-Type, then 415 for JSON sent under
    another type, then 422 for JSON of the wrong shape (``kind``: the request model, /search's has more fields)."""
    hint = "" if is_json(content_type) else f"; {JSON_TYPE}"
    if not body.strip():
        raise ApiError(400, "malformed_json", f"the request body is empty: expected {EXPECTED}{hint}.")
    try:
        # bytes: json detects UTF-8 (with or without a BOM), UTF-16 and UTF-32, as Starlette's request.json() did
        data = json.loads(body)
    except UnicodeDecodeError as e:
        raise ApiError(400, "malformed_json", f"the request body is not valid UTF-8 (byte 0x"
                                              f"{e.object[e.start:e.start + 1].hex()} at offset {e.start}): JSON is "
                                              f"sent as UTF-8{hint}.") from None
    except json.JSONDecodeError as e:
        raise ApiError(400, "malformed_json", f"the request body is not valid JSON ({e.msg} at line {e.lineno} "
                                              f"column {e.colno}){hint}.") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", f"the request body is nested too deeply to read{hint}.") from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        raise ApiError(400, "malformed_json", f"the request body is not valid JSON ({e}){hint}.") from None
    if not is_json(content_type):
        shown = f"'{content_type[:60]}'" if content_type else "none"
        raise ApiError(415, "unsupported_media_type", f"Content-Type is {shown}: {JSON_TYPE}.")
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        raise ApiError(422, "invalid_request", describe_errors(e.errors())) from None


EXPECTED = '{"texts": ["..."]} or {"text": "..."}'


def describe_errors(errors: list[dict]) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) + f". Expected {EXPECTED}."


def internal_error(e: BaseException, where: str) -> ApiError:
    """A 500 that tells the client an id and nothing else; the details go to stderr under that id."""
    eid = uuid.uuid4().hex[:12]
    detail = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    print(f"enctune serve: internal error {eid} on {where}:\n{detail}", file=sys.stderr, flush=True)
    return ApiError(500, "internal_error", f"the server failed on this request (error id {eid}); its log holds "
                                           "the details under that id.")
