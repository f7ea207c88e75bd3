"""A pydantic model the structured-output tests name as ``form_models:Order``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Order(BaseModel):
    order_id: int
    reason: str = Field(description="why the customer wrote")
    urgent: bool = False
