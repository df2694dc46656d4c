"""The `sora_remover` kind's local backend: the `local-remover` channel type runs removal tasks on
aitre's own watermark engine (`aitre.watermark`) instead of an upstream. See `protocol.py`."""
