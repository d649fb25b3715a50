"""Several tables to one instant: model.py (the common window, the start queue; pure),
engine.py (members follow their leader's decision), blocks.py (the card, progress, result)."""
