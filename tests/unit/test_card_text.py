"""Small text defects on cards and replies, as a person reads them."""

from __future__ import annotations

from bot.blocks import override_line


def test_billing_shows_no_arrow_when_the_chosen_mode_is_the_sources():
    line = override_line("PAY_PER_REQUEST", "AWS owned key", {"billing_mode": "PAY_PER_REQUEST"})
    assert line == "*Billing:* PAY_PER_REQUEST · *Encryption:* AWS owned key"
    changed = override_line("PROVISIONED", "AWS owned key", {"billing_mode": "PAY_PER_REQUEST"})
    assert "PROVISIONED → PAY_PER_REQUEST" in changed


def test_a_batch_confirmation_names_each_table_and_its_target():
    from commands.restore import pairs_text

    text = pairs_text("MusicCollection,Sessions", "-copy")
    assert text == "`MusicCollection` → `MusicCollection-copy`, `Sessions` → `Sessions-copy`"
    assert pairs_text("orders", "orders-copy") == "`orders` → `orders-copy`"
