"""A fake upstream that speaks every upstream protocol aitre uses, with fault injection.

Run it alone with `aitre simulator --port N`, or let `aitre serve` mount it at `/sim`.
"""
