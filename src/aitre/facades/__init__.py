"""Chat-format wrappers around non-chat work (image by chat, video by chat, watermark removal)."""
