"""Metadata filters (``where=``) compiled to SQL over the document store.

A filter is a dict of ``field: condition`` pairs, all of which must hold::

    {"source": "wiki", "year": {"$gte": 2020}, "author.name": {"$in": ["佐藤", "鈴木"]}}

* ``field``: a metadata key; dots reach into nested objects (``"author.name"``).
* ``condition``: a plain value (equality), or a dict of operators (all must hold):

  ======== ================================================================
  ``$eq``  equal (the default for a plain value)
  ``$ne``  not equal (also true when the field is missing)
  ``$gt``  greater than (numbers with numbers, strings with strings)
  ``$gte`` greater than or equal
  ``$lt``  less than
  ``$lte`` less than or equal
  ``$in``  equal to one of a list of values
  ``$nin`` equal to none of a list of values (also true when missing)
  ``$exists`` ``True``: the field is present (even if null); ``False``: absent
  ======== ================================================================

* ``"$and"`` / ``"$or"``: a list of filters; ``"$not"``: one filter.

Values are JSON scalars: strings, numbers, booleans, ``None`` (null). Numbers
never equal strings or booleans (``1`` does not match ``true`` or ``"1"``).
A filter compiles to one SQL expression with ``json_extract``/``json_type``
over the ``metadata`` column; every value and path is a bound parameter.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from colja.errors import FilterError

COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
LOGICAL = ("$and", "$or", "$not")

_NUMBER_TYPES = "('integer', 'real')"


def compile_where(where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """``(sql, params)``: a boolean SQL expression over the column ``metadata``."""
    if not isinstance(where, Mapping):
        raise FilterError(f"where must be a dict like {{'source': 'wiki', 'year': {{'$gte': 2020}}}}, got {type(where).__name__}")
    params: list[Any] = []
    sql = _filter(where, params, "where")
    return sql, params


def _filter(where: Mapping[str, Any], params: list[Any], at: str) -> str:
    if not isinstance(where, Mapping):
        raise FilterError(f"{at} must be a dict of field: condition, got {type(where).__name__}")
    parts = []
    for key, condition in where.items():
        if not isinstance(key, str) or not key:
            raise FilterError(f"{at}: field names must be non-empty strings, got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(condition, (list, tuple)) or not condition:
                raise FilterError(f"{at}[{key!r}] must be a non-empty list of filters")
            subs = [_filter(c, params, f"{at}[{key!r}][{i}]") for i, c in enumerate(condition)]
            parts.append("(" + (" AND " if key == "$and" else " OR ").join(subs) + ")")
        elif key == "$not":
            parts.append(f"(NOT COALESCE({_filter(condition, params, f'{at}[$not]')}, 0))")
        elif key.startswith("$"):
            raise FilterError(f"{at}: unknown top-level operator {key!r}; use one of {', '.join(LOGICAL)}, "
                              f"or a field name with a condition such as {{'year': {{'$gte': 2020}}}}")
        else:
            parts.append(_condition(key, condition, params, at))
    if not parts:
        return "1"
    return "(" + " AND ".join(parts) + ")"


def json_path(field: str) -> str:
    """``'a.b'`` -> ``'$."a"."b"'`` (each key quoted, so any character but ``"`` is fine)."""
    keys = field.split(".")
    for k in keys:
        if not k:
            raise FilterError(f"field {field!r} has an empty part; use dots only between keys ('author.name')")
        if '"' in k or "\\" in k:
            raise FilterError(f"field {field!r}: keys with a double quote or backslash cannot be filtered on")
    return "$" + "".join(f'."{k}"' for k in keys)


def _condition(field: str, condition: Any, params: list[Any], at: str) -> str:
    path = json_path(field)
    if isinstance(condition, Mapping):
        ops = list(condition)
        if ops and all(isinstance(op, str) and op.startswith("$") for op in ops):
            return "(" + " AND ".join(_operator(path, field, op, condition[op], params, at) for op in ops) + ")"
        if any(isinstance(op, str) and op.startswith("$") for op in ops):
            raise FilterError(f"{at}[{field!r}] mixes operators and plain keys: {ops}; "
                              "use only operators ({'$gte': 1, '$lt': 5}) or dotted field names ('a.b')")
        raise FilterError(f"{at}[{field!r}]: comparing with a whole object is not supported; "
                          f"filter on its keys with dots, e.g. {{'{field}.{ops[0] if ops else 'key'}': ...}}")
    return _equal(path, field, condition, params, at)


def _operator(path: str, field: str, op: str, value: Any, params: list[Any], at: str) -> str:
    where = f"{at}[{field!r}][{op!r}]"
    if op == "$eq":
        return _equal(path, field, value, params, where)
    if op == "$ne":
        return f"(NOT COALESCE({_equal(path, field, value, params, where)}, 0))"
    if op in COMPARISONS:
        return _compare(path, COMPARISONS[op], value, params, where)
    if op in ("$in", "$nin"):
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise FilterError(f"{where} must be a list of values, got {type(value).__name__}")
        inside = _one_of(path, list(value), params, where)
        return inside if op == "$in" else f"(NOT COALESCE({inside}, 0))"
    if op == "$exists":
        if not isinstance(value, bool):
            raise FilterError(f"{where} must be True or False, got {value!r}")
        params.append(path)
        return f"(json_type(metadata, ?) IS {'NOT ' if value else ''}NULL)"
    raise FilterError(f"{where}: unknown operator; use one of {', '.join(OPERATORS)}")


def _check_scalar(value: Any, where: str) -> None:
    if value is None or isinstance(value, (str, bool)):
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise FilterError(f"{where}: {value!r} is not a finite number")
        return
    raise FilterError(f"{where}: values must be strings, numbers, booleans or None, got {type(value).__name__} ({value!r:.40})")


def _equal(path: str, field: str, value: Any, params: list[Any], where: str) -> str:
    _check_scalar(value, where)
    if value is None:
        params.append(path)
        return "(json_type(metadata, ?) = 'null')"
    if isinstance(value, bool):
        params.append(path)
        return f"(json_type(metadata, ?) = '{'true' if value else 'false'}')"
    if isinstance(value, str):
        params.extend([path, path, value])
        return "(json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?)"
    params.extend([path, path, value])
    return f"(json_type(metadata, ?) IN {_NUMBER_TYPES} AND json_extract(metadata, ?) = ?)"


def _compare(path: str, op: str, value: Any, params: list[Any], where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FilterError(f"{where} compares numbers or strings, got {type(value).__name__} ({value!r:.40})")
    _check_scalar(value, where)
    kind = "= 'text'" if isinstance(value, str) else f"IN {_NUMBER_TYPES}"
    params.extend([path, path, value])
    return f"(json_type(metadata, ?) {kind} AND json_extract(metadata, ?) {op} ?)"


def _one_of(path: str, values: list[Any], params: list[Any], where: str) -> str:
    for v in values:
        _check_scalar(v, where)
    parts = []
    strings = [v for v in values if isinstance(v, str)]
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    types = sorted({"null" if v is None else ("true" if v else "false") for v in values if v is None or isinstance(v, bool)})
    if strings:
        params.extend([path, path, *strings])
        parts.append(f"(json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) IN ({','.join('?' * len(strings))}))")
    if numbers:
        params.extend([path, path, *numbers])
        parts.append(f"(json_type(metadata, ?) IN {_NUMBER_TYPES} AND json_extract(metadata, ?) IN ({','.join('?' * len(numbers))}))")
    if types:
        params.extend([path, *types])
        parts.append(f"(json_type(metadata, ?) IN ({','.join('?' * len(types))}))")
    return "(" + " OR ".join(parts) + ")" if parts else "0"


__all__ = ["compile_where", "json_path", "FilterError", "OPERATORS", "LOGICAL"]
