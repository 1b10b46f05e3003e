"""The virtual waiting room: fair (join order), bounded (slots and rate), unskippable."""
