"""Task-backed models called through `/v1/chat/completions`: `sora_video2` and its aliases (a video
task of kind `video`) and `sora_remover` (a watermark-removal task of kind `sora_remover`).

A chat request becomes a durable task (`aitre.tasks`), priced and reserved at create; the answer
follows the task: a stream of `chat.completion.chunk`s with its progress and, at the end, a
markdown link to the video in aitre's media store, or one `chat.completion` when it is done (or
when the wait bound passes: then the task's id and where to follow it). See docs/video-chat.md.
"""
