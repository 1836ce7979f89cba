"""Between the API's pydantic contracts and their protobuf twins.

A message mirrors its model field for field (``tests/unit/test_proto.py`` keeps them in
step), so the conversion goes through the models' JSON form with protobuf's own JSON mapping:
nothing is copied by hand, and a field added to both sides needs no code here.
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import BaseModel

M = TypeVar("M", bound=Message)


def to_message(model: BaseModel | dict[str, Any], cls: type[M], **extra: Any) -> M:
    """``model`` as a ``cls`` message; fields the message lacks are an error (a drift).

    Args:
        model: A contract model (or its JSON form).
        cls: The twin message class.
        **extra: Transport-only fields to set as well.

    Returns:
        The message.
    """
    data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    data = {k: v for k, v in {**data, **extra}.items() if v is not None}
    return json_format.ParseDict(data, cls())


def from_message(message: Message) -> dict[str, Any]:
    """A request message as a dict for a contract model: unset fields are left out, so the
    model's defaults apply, and ``optional`` fields count as set only when sent.
    """
    return json_format.MessageToDict(message, preserving_proto_field_name=True)
