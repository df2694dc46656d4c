"""MidJourney as midjourney-proxy clients see it: button ids, request checks, answers and the task
object. Protocol-neutral: the upstream side is `adapters/mj_proxy.py`, the routes `api/mj/`."""
