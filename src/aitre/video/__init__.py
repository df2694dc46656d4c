"""Videos as OpenAI's video API shows them, however they were asked for (`/v1/videos`, or Sora by
chat): the `video` task kind's request checks, prices, ids, its object, and the one way to create
a video task (`create.create_video_task`). Protocol-neutral: the upstream side is
`adapters/videos_api.py` (and the chat side's own), the routes `api/videos.py`."""
